"""Feature-pyramid image encoders for StyleGAN inversion: the backbone, pSp and e4e.

**Backbone** (:class:`FeaturePyramid`), after pSp's ``GradualStyleEncoder`` (Richardson et al., CVPR 2021):
a 3x3 stem (conv - BN - PReLU) and stages of IR / IR-SE residual units (``BN - conv3x3 - PReLU -
conv3x3/stride - BN [- squeeze-excitation]`` plus a shortcut). The outputs of the last three stages are
c1 (finest), c2, c3 (coarsest); FPN-style lateral merging gives the pyramid

* ``coarse = c3``,
* ``medium = up(coarse) + lateral(c2)``,
* ``fine = up(medium) + lateral(c1)``,

all with ``widths[-1]`` channels (bilinear up-sampling with ``align_corners=True``, 1x1 lateral convs).
:meth:`EncoderConfig.preset` names three configurations of this one class:

=========  ==========================================================  ====================================
name       stages (widths / units / strides)                           pyramid at its size
=========  ==========================================================  ====================================
tiny       4,8,8 / 1,1,1 / 2,2,2; stem 4                              32 px: 16, 8, 4 (tests)
small      16,32,64,128 / 1,1,1,1 / 2,2,2,2; stem 16 (the default)     64 px: 16, 8, 4 (S/4, S/8, S/16)
ir_se50    64,128,256,512 / 3,4,14,3 / 2,2,2,2; stem 64                256 px: 64, 32, 16, as pSp's IR-SE50
=========  ==========================================================  ====================================

Any power-of-two size works with any of them as long as the coarsest map is at least 1x1 (e.g. "small"
at 32, 128 or 256 px). Parameter names are ours, so pSp's face-recognition IR-SE50 weights do not load.

**pSp** (:class:`PSPEncoder`): one map2style head per latent (``n_latent`` of them), coarse heads on
``coarse``, medium on ``medium``, fine on ``fine`` (pSp's 3 / 4 / rest split, i.e. by the generator
resolution each latent drives: 4-8, 16-32, 64+); ``w_plus = w_avg + offsets``.

**e4e** (:class:`E4EEncoder`, Tov et al., SIGGRAPH 2021): head 0 predicts one base code, heads ``i >= 1``
predict deltas; ``w_plus_i = w_avg + w_off + delta_i``. A progressive stage counter ``stage`` enables the
deltas of layers ``1 .. stage`` (stage 0 = a single w for every layer); :meth:`E4EEncoder.delta_regulariser`
is e4e's ``L_d-reg = sum_i ||delta_i||_2``.

Deviation from both: the last linear layer of every head is zero-initialised (``zero_init=True``), so an
untrained encoder outputs ``w_avg`` exactly (pSp / e4e use default init; CLCAE's ``init_weights`` makes the
offsets merely small). Convolutions keep PyTorch's default init.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..configs import FromDict
from .layers import EqualLinear, check_shape

BACKBONES: dict[str, dict] = {
    "tiny": dict(size=32, stem=4, widths=(4, 8, 8), blocks=(1, 1, 1), strides=(2, 2, 2)),
    "small": dict(size=64, stem=16, widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), strides=(2, 2, 2, 2)),
    "ir_se50": dict(
        size=256, stem=64, widths=(64, 128, 256, 512), blocks=(3, 4, 14, 3), strides=(2, 2, 2, 2)
    ),
}


@dataclass
class EncoderConfig(FromDict):
    """Backbone hyper-parameters (the defaults are the ``small`` preset at 64 px)."""

    size: int = 64  # input resolution S: images must be [N, in_channels, S, S]
    in_channels: int = 3  # 3 for RGB (4 for RGB + mask in the inpainting encoder)
    stem: int = 16  # channels of the stride-1 3x3 stem
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels of each stage (>= 3 stages)
    blocks: tuple[int, ...] = (1, 1, 1, 1)  # residual units per stage
    strides: tuple[int, ...] = (2, 2, 2, 2)  # stride (1 or 2) of each stage's first unit
    se: bool = True  # squeeze-excitation in every unit (IR-SE); False gives plain IR units

    def __post_init__(self) -> None:
        self.widths = tuple(int(v) for v in self.widths)
        self.blocks = tuple(int(v) for v in self.blocks)
        self.strides = tuple(int(v) for v in self.strides)
        if not len(self.widths) == len(self.blocks) == len(self.strides) or len(self.widths) < 3:
            raise ValueError(
                f"EncoderConfig: widths, blocks and strides need one entry per stage and >= 3 stages, got "
                f"{self.widths}, {self.blocks}, {self.strides}"
            )
        if min(self.widths) < 1 or min(self.blocks) < 1 or self.stem < 1 or self.in_channels < 1:
            raise ValueError(f"EncoderConfig: channel and unit counts must be positive: {self}")
        if any(s not in (1, 2) for s in self.strides):
            raise ValueError(f"EncoderConfig.strides must be 1 or 2, got {self.strides}")
        total = math.prod(self.strides)
        if self.size < 1 or self.size & (self.size - 1) or self.size < total:
            raise ValueError(
                f"EncoderConfig.size must be a power of two >= {total} (the product of the strides), "
                f"got {self.size}"
            )

    @property
    def pyramid_sizes(self) -> tuple[int, int, int]:
        """Spatial sizes of (fine, medium, coarse), i.e. of c1, c2, c3."""
        sizes, s = [], self.size
        for stride in self.strides:
            s //= stride
            sizes.append(s)
        return sizes[-3], sizes[-2], sizes[-1]

    @property
    def channels(self) -> int:
        """Channels of every pyramid level (``widths[-1]``)."""
        return self.widths[-1]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def preset(cls, name: str, size: int | None = None, **overrides) -> EncoderConfig:
        """A named backbone (:data:`BACKBONES`), optionally at another ``size``."""
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
        values = {**BACKBONES[name], **overrides}
        if size is not None:
            values["size"] = size
        return cls(**values)


def check_images(x: torch.Tensor, channels: int, size: int, name: str = "image") -> None:
    """ValueError unless ``x`` is a float tensor ``[N, channels, size, size]`` with N >= 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [N, {channels}, {size}, {size}], got {type(x)}")
    check_shape(x, [None, channels, size, size], name)
    if x.shape[0] == 0:
        raise ValueError(f"{name}: empty batch of shape {list(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected floating-point images in [-1, 1], got dtype {x.dtype}")


class SqueezeExcite(nn.Module):
    """x * sigmoid(W2 relu(W1 avgpool(x))), channel reduction 16 (at least one hidden unit)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)  # [N, C, 1, 1]
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class IRUnit(nn.Module):
    """Improved-residual unit of ArcFace's IR(-SE) nets: BN - conv3x3 - PReLU - conv3x3/s - BN [- SE]."""

    def __init__(self, cin: int, cout: int, stride: int, se: bool) -> None:
        super().__init__()
        if cin == cout:
            self.shortcut: nn.Module = nn.MaxPool2d(1, stride)  # identity, sub-sampled when stride 2
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.residual = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            SqueezeExcite(cout) if se else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class Pyramid(NamedTuple):
    """Backbone output: ``coarse`` [N, C, s3, s3], ``medium`` [N, C, s2, s2], ``fine`` [N, C, s1, s1]."""

    coarse: torch.Tensor
    medium: torch.Tensor
    fine: torch.Tensor


def _up_add(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    up = F.interpolate(x, size=lateral.shape[2:], mode="bilinear", align_corners=True)
    return up + lateral


class FeaturePyramid(nn.Module):
    """IR(-SE) trunk + FPN lateral merging (see the module docstring)."""

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = config if config is not None else EncoderConfig()
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, cfg.stem, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cfg.stem),
            nn.PReLU(cfg.stem),
        )
        stages, cin = [], cfg.stem
        for width, n_units, stride in zip(cfg.widths, cfg.blocks, cfg.strides):
            units = [IRUnit(cin, width, stride, cfg.se)]
            units += [IRUnit(width, width, 1, cfg.se) for _ in range(n_units - 1)]
            stages.append(nn.Sequential(*units))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.lateral_medium = nn.Conv2d(cfg.widths[-2], cfg.channels, 1)  # pSp's latlayer1 (on c2)
        self.lateral_fine = nn.Conv2d(cfg.widths[-3], cfg.channels, 1)  # pSp's latlayer2 (on c1)

    def forward(self, image: torch.Tensor) -> Pyramid:
        """image [N, in_channels, S, S] -> :class:`Pyramid`."""
        check_images(image, self.cfg.in_channels, self.cfg.size)
        h = self.stem(image)
        taps = []
        for stage in self.stages:
            h = stage(h)
            taps.append(h)
        c1, c2, c3 = taps[-3:]
        medium = _up_add(c3, self.lateral_medium(c2))  # [N, C, s2, s2]
        fine = _up_add(medium, self.lateral_fine(c1))  # [N, C, s1, s1]
        return Pyramid(c3, medium, fine)


class Map2Style(nn.Module):
    """pSp's map2style head (``GradualStyleBlock``): log2(spatial) 3x3 stride-2 convs with LeakyReLU(0.01)
    down to 1x1, then an EqualLinear: [N, in_ch, spatial, spatial] -> [N, out_dim]."""

    def __init__(self, in_ch: int, out_dim: int, spatial: int, zero_init: bool = False) -> None:
        super().__init__()
        if spatial < 1 or spatial & (spatial - 1):
            raise ValueError(f"Map2Style: spatial size must be a power of two, got {spatial}")
        layers: list[nn.Module] = []
        ch = in_ch
        for _ in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(ch, out_dim, 3, 2, 1), nn.LeakyReLU(0.01)]
            ch = out_dim
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(ch, out_dim)
        self.spatial = spatial
        if zero_init:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x)  # [N, out_dim, 1, 1]
        return self.linear(h.flatten(1))


@dataclass
class WPlusEncoderConfig:
    """Constructor arguments of :class:`PSPEncoder` and :class:`E4EEncoder`."""

    backbone: EncoderConfig = field(default_factory=EncoderConfig)
    n_latent: int = 10  # generator's number of w+ rows (2 log2(G.size) - 2)
    style_dim: int = 128  # generator's w dimension
    coarse_ind: int = 3  # latents [0, coarse_ind) read the coarse map (G resolutions 4-8)
    middle_ind: int = 7  # latents [coarse_ind, middle_ind) read the medium map (16-32); the rest the fine map
    zero_init: bool = True  # zero last layer of each head: an untrained encoder outputs w_avg

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = EncoderConfig.from_dict(self.backbone)
        if self.n_latent < 1 or self.style_dim < 1:
            raise ValueError(
                f"n_latent and style_dim must be positive, got {self.n_latent}, {self.style_dim}"
            )
        if not 0 <= self.coarse_ind <= self.middle_ind:
            raise ValueError(f"need 0 <= coarse_ind <= middle_ind, got {self.coarse_ind}, {self.middle_ind}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def for_generator(cls, G: nn.Module, backbone: str = "small", size: int | None = None, **kw):
        """Config for ``G`` (n_latent, style_dim) on a named backbone at ``size`` (default G.size)."""
        bb = EncoderConfig.preset(backbone, size=size or G.size)
        return cls(backbone=bb, n_latent=G.n_latent, style_dim=G.style_dim, **kw)


class _StyleEncoder(nn.Module):
    """Backbone + one map2style head per latent + the ``w_avg`` buffer (shared by pSp and e4e)."""

    def __init__(self, config: WPlusEncoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = config if config is not None else WPlusEncoderConfig()
        self.backbone = FeaturePyramid(cfg.backbone)
        c = cfg.backbone.channels
        s_fine, s_medium, s_coarse = cfg.backbone.pyramid_sizes
        heads = []
        for i in range(cfg.n_latent):
            spatial = s_coarse if i < cfg.coarse_ind else s_medium if i < cfg.middle_ind else s_fine
            heads.append(Map2Style(c, cfg.style_dim, spatial, cfg.zero_init))
        self.heads = nn.ModuleList(heads)
        self.register_buffer("w_avg", torch.zeros(cfg.style_dim))  # persistent: saved with the encoder

    @property
    def config(self) -> dict:
        return self.cfg.to_dict()

    def set_w_avg(self, w_avg: torch.Tensor) -> None:
        """Set the offset origin (the generator's ``get_w_avg()``, [style_dim])."""
        check_shape(w_avg, [self.cfg.style_dim], "w_avg")
        self.w_avg.copy_(w_avg.detach())

    def _level(self, pyramid: Pyramid, i: int) -> torch.Tensor:
        cfg = self.cfg
        return (
            pyramid.coarse if i < cfg.coarse_ind else pyramid.medium if i < cfg.middle_ind else pyramid.fine
        )


class PSPEncoder(_StyleEncoder):
    """pSp: ``w_plus = w_avg + [map2style_i(features_i)]_i`` (see the module docstring)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [N, in_channels, S, S] -> w_plus [N, n_latent, style_dim]."""
        pyramid = self.backbone(image)
        offsets = torch.stack([head(self._level(pyramid, i)) for i, head in enumerate(self.heads)], dim=1)
        return self.w_avg + offsets  # [N, n_latent, style_dim]


class E4EEncoder(_StyleEncoder):
    """e4e: one base code plus per-layer deltas enabled progressively (see the module docstring)."""

    def __init__(self, config: WPlusEncoderConfig | None = None) -> None:
        super().__init__(config)
        self.register_buffer("progressive_stage", torch.tensor(0, dtype=torch.long))  # saved and resumed
        self._last_deltas: torch.Tensor | None = None

    @property
    def max_stage(self) -> int:
        """The last stage (every delta on), e4e's ``Inference`` stage: ``n_latent - 1``."""
        return self.cfg.n_latent - 1

    @property
    def stage(self) -> int:
        return int(self.progressive_stage)

    def set_stage(self, stage: int) -> None:
        """Enable the deltas of layers ``1 .. stage`` (0 = a single w for every layer)."""
        if not 0 <= stage <= self.max_stage:
            raise ValueError(f"e4e stage must be in [0, {self.max_stage}], got {stage}")
        self.progressive_stage.fill_(stage)

    def stage_for_step(self, step: int, every: int) -> int:
        """e4e's schedule: one more delta every ``every`` steps (``every <= 0``: all deltas at once)."""
        return self.max_stage if every <= 0 else min(step // every, self.max_stage)

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image -> (w [N, style_dim] = w_avg + w_off, deltas [N, n_latent, style_dim]); row 0 and the rows
        of layers beyond ``stage`` are zero (their heads are not run and get no gradient)."""
        pyramid = self.backbone(image)
        w = self.w_avg + self.heads[0](pyramid.coarse)  # [N, style_dim]
        rows = [torch.zeros_like(w)]
        for i in range(1, self.cfg.n_latent):
            rows.append(self.heads[i](self._level(pyramid, i)) if i <= self.stage else torch.zeros_like(w))
        deltas = torch.stack(rows, dim=1)  # [N, n_latent, style_dim]
        self._last_deltas = deltas
        return w, deltas

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [N, in_channels, S, S] -> w_plus [N, n_latent, style_dim] = w + deltas."""
        w, deltas = self.encode(image)
        return w.unsqueeze(1) + deltas

    def delta_regulariser(self, w_plus: torch.Tensor | None = None) -> torch.Tensor:
        """e4e's L_d-reg = sum_{i=1..stage} mean_n ||w_plus_i - w_plus_0||_2 (the L2 norm, not squared, as
        in e4e's ``delta_regularization_loss``), of ``w_plus`` or else of the last forward's deltas."""
        if w_plus is None:
            if self._last_deltas is None:
                raise RuntimeError("delta_regulariser(): no forward pass yet; pass w_plus explicitly")
            deltas = self._last_deltas
        else:
            check_shape(w_plus, [None, self.cfg.n_latent, self.cfg.style_dim], "w_plus")
            deltas = w_plus - w_plus[:, :1]
        active = deltas[:, 1 : self.stage + 1]  # [N, stage, style_dim]
        if active.shape[1] == 0:
            return deltas.new_zeros(())
        return active.norm(dim=2).mean(0).sum()


# ---------------------------------------------------------------------------------------------------------
# Saving and loading (ganinv format; kinds "psp_encoder" and "e4e_encoder")

_KINDS = {"psp_encoder": PSPEncoder, "e4e_encoder": E4EEncoder}


def save_encoder(path, encoder: PSPEncoder | E4EEncoder, **extra) -> None:
    """Write a pSp or e4e encoder (config, weights, ``w_avg`` and e4e's stage) as a ganinv checkpoint."""
    from ..checkpoints import save_checkpoint

    kind = "e4e_encoder" if isinstance(encoder, E4EEncoder) else "psp_encoder"
    save_checkpoint(path, kind, encoder.config, encoder.state_dict(), **extra)


def load_encoder(path, kind: str = "psp_encoder", device: str | torch.device = "cpu"):
    """Load a :func:`save_encoder` file of ``kind`` in eval mode; CheckpointError on any mismatch."""
    from ..checkpoints import build_checked, load_checkpoint, load_state_strict, stored_config

    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    ckpt = load_checkpoint(path, kind)
    cls = _KINDS[kind]
    cfg = stored_config(ckpt, lambda c: WPlusEncoderConfig(**c), path, cls.__name__)
    model = build_checked(lambda: cls(cfg), ckpt["state_dict"], path, cls.__name__, ckpt["config"])
    load_state_strict(model, ckpt["state_dict"], path)
    return model.eval().to(device)
