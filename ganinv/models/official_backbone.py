"""The IR-SE50 trunk and map2style heads of the released pSp / e4e / CLCAE encoders, under their names.

Rebuilt here (not imported) so that the released checkpoints load with ``load_state_dict(strict=True)`` once
the ``encoder.`` prefix is stripped. Parameter names follow pSp's ``models/encoders/helpers.py`` and
``psp_encoders.py`` (Richardson et al., CVPR 2021, Sec. 3 and Fig. 2), which e4e and CLCAE reuse unchanged:

* ``input_layer``: 3x3 conv (no bias) - BatchNorm - PReLU, stride 1;
* ``body.0 .. body.23``: :class:`BottleneckIRSE` units (ArcFace's IR-SE, "improved residual" with
  squeeze-excitation), 3 / 4 / 14 / 3 units of 64 / 128 / 256 / 512 channels, the first unit of each stage
  with stride 2. At 256 px the outputs of units 6, 20 and 23 are pSp's taps c1 [N, 128, 64, 64],
  c2 [N, 256, 32, 32] and c3 [N, 512, 16, 16];
* ``latlayer1`` (1x1 conv, c2 -> 512) and ``latlayer2`` (1x1 conv, c1 -> 512): the FPN laterals; the pyramid
  is p2 = up(c3) + latlayer1(c2) [N, 512, 32, 32] and p1 = up(p2) + latlayer2(c1) [N, 512, 64, 64], with
  bilinear up-sampling (``align_corners=True``) to the lateral's size;
* map2style heads (``GradualStyleBlock``): log2(spatial) 3x3 stride-2 convs with LeakyReLU(0.01), then an
  equalised linear layer; ganinv's :class:`~ganinv.models.encoders.Map2Style` already has these names
  (``convs.0``, ``convs.2``, ..., ``linear.weight``, ``linear.bias``) and is reused.

The widths are constructor arguments (the released ones by default) so that tests can build the same layout
narrow; the unit counts and tap positions are those of the 50-layer net, the only one the releases use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import Map2Style, SqueezeExcite

IRSE50_UNITS = (3, 4, 14, 3)  # units per stage (pSp's get_blocks(50))
IRSE50_WIDTHS = (64, 128, 256, 512)  # channels per stage
TAPS = (6, 20, 23)  # body indices whose outputs are c1, c2, c3
HEAD_SPATIAL = (16, 32, 64)  # GradualStyleBlock "spatial" of coarse / medium / fine heads (4 / 5 / 6 convs)


def stage_of_units(units: tuple[int, ...] = IRSE50_UNITS) -> list[int]:
    """Stage index of every body unit: [0, 0, 0, 1, 1, 1, 1, 2, ...] (24 entries for IR-SE50)."""
    return [s for s, n in enumerate(units) for _ in range(n)]


class BottleneckIRSE(nn.Module):
    """pSp's ``bottleneck_IR_SE``: res_layer = BN - conv3x3 - PReLU - conv3x3/stride - BN - SE, plus a
    shortcut (``MaxPool2d(1, stride)`` when the width is kept, else conv1x1/stride - BN).
    [N, cin, H, H] -> [N, depth, H / stride, H / stride]."""

    def __init__(self, cin: int, depth: int, stride: int) -> None:
        super().__init__()
        if cin == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SqueezeExcite(depth, 16),  # fc1 / fc2, 1x1 convs without bias: pSp's SEModule
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def upsample_add(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """pSp's ``_upsample_add``: bilinear (align_corners=True) up-sampling of ``x`` to ``lateral``'s size, plus
    ``lateral``."""
    return F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


class IRSE50Trunk(nn.Module):
    """``input_layer``, ``body`` and the FPN laterals shared by every released encoder (attributes at the top
    level, as in the releases, so the subclasses' state dicts have the released keys).

    ``widths``: channels of the four stages (the stem has ``widths[0]``); the pyramid maps p2 and p1 have
    ``widths[3]`` channels, like c3.
    """

    def __init__(self, input_nc: int = 3, widths: tuple[int, ...] = IRSE50_WIDTHS) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"IR-SE50 has 4 stages, got widths {widths}")
        self.widths = tuple(int(c) for c in widths)
        self.input_layer = nn.Sequential(
            nn.Conv2d(input_nc, self.widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(self.widths[0]),
            nn.PReLU(self.widths[0]),
        )
        units, cin = [], self.widths[0]
        for width, n in zip(self.widths, IRSE50_UNITS):
            units += [BottleneckIRSE(cin, width, 2)] + [BottleneckIRSE(width, width, 1) for _ in range(n - 1)]
            cin = width
        self.body = nn.Sequential(*units)
        self.latlayer1 = nn.Conv2d(self.widths[2], self.widths[3], 1)
        self.latlayer2 = nn.Conv2d(self.widths[1], self.widths[3], 1)

    def taps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [N, input_nc, 256, 256] -> c1 [N, w1, 64, 64], c2 [N, w2, 32, 32], c3 [N, w3, 16, 16]."""
        h = self.input_layer(x)  # [N, w0, 256, 256]
        out = []
        for i, unit in enumerate(self.body):
            h = unit(h)
            if i in TAPS:
                out.append(h)
        c1, c2, c3 = out
        return c1, c2, c3

    def pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (c3 [N, C, 16, 16], p2 [N, C, 32, 32], p1 [N, C, 64, 64]) with C = widths[3]."""
        c1, c2, c3 = self.taps(x)
        p2 = upsample_add(c3, self.latlayer1(c2))
        p1 = upsample_add(p2, self.latlayer2(c1))
        return c3, p2, p1


def style_heads(n: int, in_ch: int, style_dim: int, coarse_ind: int, middle_ind: int) -> nn.ModuleList:
    """``n`` map2style heads: [0, coarse_ind) on the 16x16 map, [coarse_ind, middle_ind) on 32x32, the rest
    on 64x64 (pSp: 3 / 7; CLCAE's ``styles_others``: 2 / 6, since its token 0 comes from ``styles.0``)."""
    heads = nn.ModuleList()
    for i in range(n):
        spatial = (
            HEAD_SPATIAL[0] if i < coarse_ind else HEAD_SPATIAL[1] if i < middle_ind else HEAD_SPATIAL[2]
        )
        heads.append(Map2Style(in_ch, style_dim, spatial))
    return heads


def level_of(i: int, coarse_ind: int, middle_ind: int) -> int:
    """0 (c3), 1 (p2) or 2 (p1): the pyramid map head ``i`` reads."""
    return 0 if i < coarse_ind else 1 if i < middle_ind else 2
