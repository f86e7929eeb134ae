"""Pure-PyTorch reference kernels.

They have exactly the signature of the compiled CUDA kernels (``csrc/``), so that the autograd Functions in
``fused_act.py`` and ``upfirdn2d.py`` can run on either, and so that the CUDA kernels have a reference to be
compared against. Called directly (``impl="ref"``) they are ordinary differentiable PyTorch code, which gives
first and second derivatives for free.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fused_bias_act(
    x: torch.Tensor, bias: torch.Tensor, ref: torch.Tensor, grad_mode: int, alpha: float, scale: float
) -> torch.Tensor:
    """Bias + leaky ReLU + gain, or its first derivative.

    ``grad_mode == 0``: ``y = lrelu(x + bias, alpha) * scale`` with ``bias`` ([C] or empty) added along dim 1.
    ``grad_mode == 1``: ``x`` is an incoming gradient and ``ref`` the forward output; returns
    ``x * (1 if ref > 0 else alpha) * scale`` (the derivative of the forward with respect to its input).
    """
    if grad_mode == 0:
        if bias.numel() > 0:
            x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2))
        return F.leaky_relu(x, alpha) * scale
    if grad_mode == 1:
        return torch.where(ref > 0, x, x * alpha) * scale
    raise ValueError(f"grad_mode must be 0 or 1, got {grad_mode}")


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up_x: int,
    up_y: int,
    down_x: int,
    down_y: int,
    pad_x0: int,
    pad_x1: int,
    pad_y0: int,
    pad_y1: int,
) -> torch.Tensor:
    """Upsample (zero insertion), pad (negative pads crop), convolve with ``kernel``, downsample.

    x: [N, C, H, W]; kernel: [kh, kw]. True convolution (the kernel is flipped), applied to every channel
    separately. Output: [N, C, (H*up_y + pad_y0 + pad_y1 - kh) // down_y + 1, same for W].
    """
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up_x - 1, 0, 0, 0, up_y - 1])  # zero insertion: every sample followed by up-1 zeros
    x = x.reshape(n, c, h * up_y, w * up_x)
    x = F.pad(x, [max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)])
    x = x[
        :,
        :,
        max(-pad_y0, 0) : x.shape[2] - max(-pad_y1, 0),
        max(-pad_x0, 0) : x.shape[3] - max(-pad_x1, 0),
    ]
    # depthwise convolution (groups = channels) with the flipped kernel: a true convolution per channel
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).reshape(1, 1, kh, kw).repeat(c, 1, 1, 1)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down_y, ::down_x]
