"""upfirdn2d: upsample by zero insertion, pad, FIR-filter, downsample, for every channel of [N, C, H, W].

The CUDA path is an autograd Function whose backward is the same op with up and down swapped, the kernel
flipped and the pads chosen so that it is the exact adjoint; it is itself differentiable, so derivatives of
any order exist.
"""

from __future__ import annotations

from types import ModuleType

import torch

from . import _reference
from ._dispatch import cuda_kernels


def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    vx, vy = (v, v) if isinstance(v, int) else tuple(v)
    if vx < 1 or vy < 1:
        raise ValueError(f"upfirdn2d: {name} factors must be >= 1, got {v}")
    return int(vx), int(vy)


def _pads(pad: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(pad) == 2:
        return pad[0], pad[1], pad[0], pad[1]
    if len(pad) == 4:
        return tuple(int(p) for p in pad)  # type: ignore[return-value]
    raise ValueError(f"upfirdn2d: pad must be (p0, p1) or (x0, x1, y0, y1), got {pad}")


class _UpFirDn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel, up, down, pad, kernels):  # noqa: D102
        (ux, uy), (dx, dy), (px0, px1, py0, py1) = up, down, pad
        out = kernels.upfirdn2d(x.contiguous(), kernel, ux, uy, dx, dy, px0, px1, py0, py1)
        kh, kw = kernel.shape
        h, w = x.shape[2:]
        oh, ow = out.shape[2:]
        # Adjoint: zero-insert the gradient by `down`, filter with the flipped kernel, keep every `up`-th.
        grad_pad = (
            kw - px0 - 1,
            w * ux - ow * dx + px0 - ux + 1,
            kh - py0 - 1,
            h * uy - oh * dy + py0 - uy + 1,
        )
        ctx.save_for_backward(kernel)
        ctx.up, ctx.down, ctx.pad, ctx.grad_pad, ctx.kernels = up, down, pad, grad_pad, kernels
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (kernel,) = ctx.saved_tensors
        flipped = torch.flip(kernel, [0, 1]).contiguous()
        dx = _UpFirDn2dAdjoint.apply(grad, flipped, ctx.down, ctx.up, ctx.grad_pad, ctx.pad, ctx.kernels)
        return dx, None, None, None, None, None


class _UpFirDn2dAdjoint(torch.autograd.Function):
    """The backward op; its own backward is the original forward again."""

    @staticmethod
    def forward(ctx, grad, flipped, up, down, pad, orig_pad, kernels):  # noqa: D102
        ctx.save_for_backward(flipped)
        ctx.up, ctx.down, ctx.orig_pad, ctx.kernels = up, down, orig_pad, kernels
        (ux, uy), (dx, dy), (px0, px1, py0, py1) = up, down, pad
        return kernels.upfirdn2d(grad.contiguous(), flipped, ux, uy, dx, dy, px0, px1, py0, py1)

    @staticmethod
    def backward(ctx, gg):  # noqa: D102
        (flipped,) = ctx.saved_tensors
        kernel = torch.flip(flipped, [0, 1]).contiguous()
        out = _UpFirDn2d.apply(gg, kernel, ctx.down, ctx.up, ctx.orig_pad, ctx.kernels)
        return out, None, None, None, None, None, None


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: int | tuple[int, int] = 1,
    down: int | tuple[int, int] = 1,
    pad: tuple[int, ...] = (0, 0),
    kernels: ModuleType | None = None,
) -> torch.Tensor:
    """FIR up/down-sampling of x [N, C, H, W] with kernel [kh, kw] (true convolution).

    ``up`` and ``down`` are an int or (x, y); ``pad`` is (p0, p1) for both axes or (x0, x1, y0, y1);
    negative pads crop. Output height: ``(H * up_y + pad_y0 + pad_y1 - kh) // down_y + 1``.
    ``kernels`` forces the autograd-Function path with the given kernel module (see ``fused_bias_act``).
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects x of shape [N, C, H, W], got {tuple(x.shape)}")
    if kernel.ndim != 2:
        raise ValueError(f"upfirdn2d expects a 2-D kernel, got shape {tuple(kernel.shape)}")
    up, down, pad = _pair(up, "up"), _pair(down, "down"), _pads(tuple(pad))
    for axis, size, u, k, p0, p1 in (
        ("H", x.shape[2], up[1], kernel.shape[0], pad[2], pad[3]),
        ("W", x.shape[3], up[0], kernel.shape[1], pad[0], pad[1]),
    ):
        if size * u + p0 + p1 < k:
            raise ValueError(
                f"upfirdn2d: {axis}={size} after up {u} and pad ({p0}, {p1}) is smaller than the kernel ({k})"
            )
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    kernels = kernels if kernels is not None else cuda_kernels(x)
    if kernels is None:
        return _reference.upfirdn2d(x, kernel, *up, *down, *pad)
    return _UpFirDn2d.apply(x, kernel.contiguous(), up, down, pad, kernels)
