"""ganinv: StyleGAN2 inversion, editing and diverse inpainting, reproduced for teaching (CLCAE, CVPR 2023;
Diverse Inpainting and Editing with GAN Inversion, ICCV 2023)."""

__version__ = "0.1.0"
