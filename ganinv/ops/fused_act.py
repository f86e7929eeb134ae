"""Fused bias + leaky ReLU + gain: ``lrelu(x + b, 0.2) * sqrt(2)``, StyleGAN2's activation.

The CUDA path is an autograd Function whose backward is another Function built on the same kernel, so
derivatives of any order exist (R1 and path-length regularisation need the second).
"""

from __future__ import annotations

import math
from types import ModuleType

import torch
from torch import nn

from . import _reference
from ._dispatch import cuda_kernels

DEFAULT_SLOPE = 0.2
DEFAULT_SCALE = math.sqrt(2.0)


class _FusedBiasActGrad(torch.autograd.Function):
    """dx = dy * lrelu'(y) * scale; linear in dy, so its own backward is itself."""

    @staticmethod
    def forward(ctx, dy, y, alpha, scale, kernels):  # noqa: D102
        ctx.save_for_backward(y)
        ctx.alpha, ctx.scale, ctx.kernels = alpha, scale, kernels
        return kernels.fused_bias_act(dy.contiguous(), dy.new_empty(0), y, 1, alpha, scale)

    @staticmethod
    def backward(ctx, ddx):  # noqa: D102
        (y,) = ctx.saved_tensors
        # The derivative with respect to y is zero almost everywhere.
        return _FusedBiasActGrad.apply(ddx, y, ctx.alpha, ctx.scale, ctx.kernels), None, None, None, None


class _FusedBiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, alpha, scale, kernels):  # noqa: D102
        empty = x.new_empty(0)
        y = kernels.fused_bias_act(x.contiguous(), empty if bias is None else bias, empty, 0, alpha, scale)
        ctx.save_for_backward(y)
        ctx.alpha, ctx.scale, ctx.kernels, ctx.has_bias = alpha, scale, kernels, bias is not None
        return y

    @staticmethod
    def backward(ctx, dy):  # noqa: D102
        (y,) = ctx.saved_tensors
        dx = _FusedBiasActGrad.apply(dy, y, ctx.alpha, ctx.scale, ctx.kernels)
        db = None
        if ctx.has_bias:
            db = dx.sum([d for d in range(dx.ndim) if d != 1])
        return dx, db, None, None, None


def fused_bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    negative_slope: float = DEFAULT_SLOPE,
    scale: float = DEFAULT_SCALE,
    kernels: ModuleType | None = None,
) -> torch.Tensor:
    """``lrelu(x + bias, negative_slope) * scale`` with ``bias`` [C] along dim 1 of ``x`` [N, C, ...].

    ``kernels`` forces the autograd-Function path with the given kernel module (tests pass
    ``ganinv.ops._reference`` to check the Function's derivatives on CPU); by default CUDA tensors use the
    compiled kernels and everything else the reference path.
    """
    if x.ndim < 2:
        raise ValueError(f"fused_bias_act expects x of shape [N, C, ...], got {tuple(x.shape)}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != x.shape[1]):
        raise ValueError(f"bias of shape {tuple(bias.shape)} does not match x channels {x.shape[1]}")
    if bias is not None:
        bias = bias.to(x.dtype)
    kernels = kernels if kernels is not None else cuda_kernels(x)
    if kernels is None:
        empty = x.new_empty(0)
        return _reference.fused_bias_act(x, empty if bias is None else bias, empty, 0, negative_slope, scale)
    return _FusedBiasAct.apply(x, bias, negative_slope, scale, kernels)


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by ``lrelu(., 0.2) * sqrt(2)`` (key ``bias`` as in rosinality)."""

    def __init__(
        self,
        channels: int,
        bias: bool = True,
        negative_slope: float = DEFAULT_SLOPE,
        scale: float = DEFAULT_SCALE,
    ) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.negative_slope, self.scale = negative_slope, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_bias_act(x, self.bias, self.negative_slope, self.scale)
