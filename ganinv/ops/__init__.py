"""StyleGAN2's custom ops, written for ganinv: ``upfirdn2d`` and ``fused_bias_act``.

Every op has a pure-PyTorch reference path (CPU, and the reference for tests) and CUDA kernels
(``csrc/``) that are JIT-compiled with ninja on first use with a CUDA tensor. Importing this package
never compiles anything.
"""

from ._dispatch import get_impl, set_impl, use_impl
from .fused_act import FusedLeakyReLU, fused_bias_act
from .upfirdn2d import upfirdn2d

__all__ = ["FusedLeakyReLU", "fused_bias_act", "get_impl", "set_impl", "upfirdn2d", "use_impl"]
