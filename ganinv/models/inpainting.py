"""Diverse inpainting with GAN inversion: the models of the method section (Sec. 3) of Yildirim et al.,
"Diverse Inpainting and Editing with GAN Inversion", ICCV 2023 (arXiv 2307.15033).

Only the paper's abstract is known for certain (``docs/papers/diverse_inpainting.md`` §1, "the notes" below):
an encoder inverts the erased image, a mixing network combines that code with mapped random samples, and
higher-rate features keep the unerased colours. The equations below follow the notes' proposals (§2, §3, §5)
and are otherwise **our choices**, each marked. Notation: ``mask`` [N, 1, H, W] with 1 = keep, 0 = hole
(:mod:`ganinv.data.masks`); ``x_erased = x * mask``; ``w_plus`` [N, n_latent, style_dim]; ``w_r`` =
``mapping(z)``; ``f`` = generator features at a resolution ``r`` (the F space).

* :class:`ErasedEncoder` (§2): a pSp-style W+ encoder on 4 channels ``[x_erased, mask]`` (without the mask a
  black pixel and a hole look alike); ``w_plus_e = w_avg + offsets`` with zero-initialised heads.
* :class:`MixingNetwork` (§3), per W+ row ``l``, with its own two-layer MLP per row (our choice)::

      u_l = [w_e,l - w_avg ; w_r,l - w_avg]                 h_l = lrelu_0.2(A_l u_l + a_l)
      [gt_l, d_l] = B_l h_l + b_l                         g_l = sigmoid(gt_l),  c_l = w_e,l + d_l
      w_mix,l = g_l * c_l + (1 - g_l) * w_r,l                                      ("gated", default)

  i.e. the notes' reconstruction (§3) ``sigmoid(g) w_comb + (1 - sigmoid(g)) w_r`` with a per-channel gate
  and a residual candidate ``c_l`` (``mix_candidate=False``: ``c_l = w_e,l``). ``B_l`` is zero-initialised:
  at the start ``c_l = w_e,l`` and ``g_l = sigmoid(gate_bias_init)`` (0.88), close to pure encoding.
  Ablations: ``"ungated"`` ``w_mix,l = w_e,l + d_l``; ``"none"`` ``w_mix = w_e`` (deterministic, no w_r).
* :class:`SkipEncoder` (§5, stage 2): convs on ``[x_erased, mask, y1]`` (``y1`` = the stage-1 output)
  down to each ``r`` in ``f_res``, plus the encoder's finest pyramid map and the stage-1 feature ``f_gen``;
  it predicts a residual ``delta_r`` (zero-initialised last conv: an untrained stage 2 equals stage 1),
  fused mask-aware into the live generator feature::

      f_enc = f_gen + delta_r,     f = mask_r * f_enc + (1 - mask_r) * f_gen = f_gen + mask_r * delta_r

  ``mask_r`` is the **hard** down-sampled mask by default (a cell keeps encoder features only if all its
  pixels are known: ``1 - maxpool(1 - mask)``), so holes keep the generator's diverse features and the
  "hole = 0" pattern cannot leak in; ``fuse_mask="soft"`` uses the area average; ``fuse_mask="feather"``
  (ours, against seams) lets the hard mask fade into the hole over two cells,
  ``max(mask_r, avgpool_5x5(mask_r))``, so the correction of the known side carries on into the first
  cells of the hole instead of stopping at a step. The summary of the paper
  (unverified) fuses at three resolutions (32, 64, 128 for a 1024 px G): ``f_res`` may list several;
  they are fused in turn by :func:`synthesis_fused` (the stage-1 ``f_gen`` feeds each ``delta_r``).
* :class:`Inpainter`: encoder + mixer + skip encoder around a (frozen) generator. Whether the paper pastes
  the known pixels back onto its outputs is not known; stage 2 exists to make them faithful, so outputs are
  raw generator images and :func:`composite` is a separate, optional step (our choice).

Other choices: one z per image broadcast to every row (``z`` [N, n_latent, style_dim] gives per-row w_r);
``w_r`` truncated with ``truncation`` (recorded in the config, default 1 = none); images larger than the
encoder are average-pooled for it, the mask hard-pooled.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..blending import seamless_paste
from ..checkpoints import (
    CheckpointError,
    build_checked,
    load_checkpoint,
    load_generator,
    load_state_strict,
    resolve_checkpoint,
    save_checkpoint,
    stored_config,
)
from ..configs import FromDict
from ..data.masks import check_mask
from .encoders import EncoderConfig, Pyramid, WPlusEncoderConfig, _StyleEncoder, check_images
from .layers import check_shape

MIXING_MODES = ("gated", "ungated", "none")
FUSE_MASKS = ("hard", "soft", "feather")
FEATHER_CELLS = 2  # how far (in cells of the fused resolution) a "feather" mask reaches into the hole
KIND = "inpainter"  # checkpoint kind; a bundled name resolves to data/pretrained/<name>/inpainter.pt


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"InpaintingConfig: {message}")


@dataclass
class InpaintingConfig(FromDict):
    """Constructor arguments of :class:`Inpainter`; the defaults fit the 64 px synthfaces64 generator."""

    # backbone.in_channels must be 4 (RGB + mask)
    encoder: WPlusEncoderConfig = field(
        default_factory=lambda: WPlusEncoderConfig(EncoderConfig(in_channels=4))
    )
    size: int = 64  # image (generator) resolution; the encoder's backbone.size may be smaller
    mixing: str = "gated"  # "gated" | "ungated" | "none" (the no-mixing ablation: w_plus_mix = w_plus_e)
    mix_hidden: int = 128  # hidden width of each row's mixing MLP
    mix_candidate: bool = True  # gated: c_l = w_e,l + d_l (True) or c_l = w_e,l (False)
    gate_bias_init: float = 2.0  # initial gate logit: sigmoid(2) = 0.88, close to the encoded code
    truncation: float = 1.0  # psi of w_r = mapping(z) (1 = none)
    f_res: tuple[int, ...] = (16,)  # stage-2 fusion resolutions (ascending, each in 8..size)
    f_channels: tuple[int, ...] = (128,)  # G.channels[r] for each r in f_res
    skip_width: int = 32  # channels of the skip encoder's convs
    skip_stage1_image: bool = True  # the skip encoder also sees the stage-1 output y1
    skip_pyramid: bool = True  # ... and the erased encoder's finest pyramid map
    fuse_mask: str = "hard"  # mask_r: "hard" (min-pool), "soft" (area average) or "feather" (hard, faded)

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = WPlusEncoderConfig(**self.encoder)
        self.f_res = tuple(int(r) for r in self.f_res)
        self.f_channels = tuple(int(c) for c in self.f_channels)
        bb, res = self.encoder.backbone, self.f_res
        _require(bb.in_channels == 4, f"the encoder needs in_channels=4 (RGB + mask), got {bb.in_channels}")
        _require(
            self.size >= 8 and not self.size & (self.size - 1) and self.size % bb.size == 0,
            f"size must be a power of two >= 8 and >= the encoder's size {bb.size}, got {self.size}",
        )
        _require(self.mixing in MIXING_MODES, f"mixing must be one of {MIXING_MODES}, got {self.mixing!r}")
        _require(
            self.fuse_mask in FUSE_MASKS, f"fuse_mask must be one of {FUSE_MASKS}, got {self.fuse_mask!r}"
        )
        _require(
            bool(res)
            and list(res) == sorted(set(res))
            and all(8 <= r <= self.size and not r & (r - 1) for r in res),
            f"f_res must be ascending distinct powers of two in 8..{self.size}, got {res}",
        )
        _require(
            len(self.f_channels) == len(res) and min(self.f_channels) > 0,
            f"f_channels needs one positive entry per f_res, got {self.f_channels}",
        )
        _require(
            min(self.mix_hidden, self.skip_width, self.truncation) > 0, "widths and truncation must be > 0"
        )

    @property
    def n_latent(self) -> int:
        return self.encoder.n_latent

    @property
    def style_dim(self) -> int:
        return self.encoder.style_dim

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def for_generator(cls, G: nn.Module, backbone: str = "small", **overrides) -> InpaintingConfig:
        """Config for ``G`` on a named backbone (encoder at min(G.size, 256) px); ``f_res`` defaults to
        G.size / 4 capped at 64 (16 at 64 px, StyleRes's 64 at 1024 px)."""
        bb = EncoderConfig.preset(backbone, size=min(G.size, 256), in_channels=4)
        f_res = tuple(overrides.pop("f_res", (max(8, min(G.size // 4, 64)),)))
        values = dict(
            encoder=WPlusEncoderConfig(backbone=bb, n_latent=G.n_latent, style_dim=G.style_dim),
            size=G.size,
            mix_hidden=G.style_dim,
            f_res=f_res,
            f_channels=tuple(G.channels.get(r, 0) for r in f_res),
            skip_width=8 if backbone == "tiny" else 32,
        )
        return cls(**{**values, **overrides})

    def check_generator(self, G: nn.Module) -> None:
        """ValueError unless ``G`` has this config's size, n_latent, style_dim and channels at f_res."""
        want = (self.size, self.n_latent, self.style_dim, self.f_channels)
        got = (G.size, G.n_latent, G.style_dim, tuple(G.channels.get(r) for r in self.f_res))
        if want != got:
            raise ValueError(
                f"generator does not fit the inpainting config: (size, n_latent, style_dim, channels at "
                f"{self.f_res}) is {got}, the config needs {want}"
            )


def mask_at(mask: torch.Tensor, res: int, mode: str = "hard") -> torch.Tensor:
    """Down-sample a mask [N, 1, H, H] to [N, 1, res, res]: "hard" keeps a cell only if all its pixels are
    kept (1 - maxpool(1 - mask)); "soft" is the kept fraction (area average); "feather" is the hard mask
    faded into the hole over :data:`FEATHER_CELLS` cells (``max(hard, box average of hard)``)."""
    k = mask.shape[-1] // res
    if mode == "soft":
        return F.avg_pool2d(mask, k) if k > 1 else mask
    hard = 1 - F.max_pool2d(1 - mask, k) if k > 1 else mask
    if mode != "feather":
        return hard
    w = 2 * FEATHER_CELLS + 1
    faded = F.avg_pool2d(hard, w, stride=1, padding=FEATHER_CELLS, count_include_pad=False)
    return torch.maximum(hard, faded)


def composite(x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, seamless: bool = False) -> torch.Tensor:
    """Known pixels from ``x``, holes from ``y``: ``mask * x + (1 - mask) * y``, or with ``seamless`` the
    Poisson paste of :func:`ganinv.blending.seamless_paste` (no colour step at the hole border). ``y`` may
    carry a samples axis ([N, n, 3, H, W], as from :meth:`Inpainter.sample`)."""
    mask = check_mask(mask, x)
    if seamless:
        return seamless_paste(x, mask, y)
    if y.ndim == x.ndim + 1:
        x, mask = x.unsqueeze(1), mask.unsqueeze(1)
    return mask * x + (1 - mask) * y


def stack_samples(
    images: list[torch.Tensor],
    x: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    seamless: bool = False,
) -> torch.Tensor:
    """n completions [N, 3, H, W] -> [N, n, 3, H, W], the known pixels of ``x`` pasted when it is given
    (:func:`composite`, ``seamless`` or not)."""
    ys = torch.stack(images, 1)
    return ys if x is None else composite(x, mask, ys, seamless)


PASTE_MODES = ("none", "hard", "seamless")


def check_paste(paste: bool | str) -> str:
    """A paste setting as one of :data:`PASTE_MODES` (False -> "none", True -> "hard")."""
    mode = {False: "none", True: "hard"}.get(paste, paste) if isinstance(paste, bool) else paste
    if mode not in PASTE_MODES:
        raise ValueError(f"paste must be one of {PASTE_MODES} (or a bool), got {paste!r}")
    return mode


class ErasedEncoding(NamedTuple):
    w_plus: torch.Tensor  # [N, n_latent, style_dim] = w_avg + offsets
    pyramid: Pyramid  # backbone features (coarse, medium, fine), for stage 2


class ErasedInput(NamedTuple):
    """What :meth:`Inpainter.encode` returns: the erased input and its code."""

    x_erased: torch.Tensor  # [N, 3, H, W] = x * mask
    mask: torch.Tensor  # [N, 1, H, W], 1 = keep, 0 = hole
    w_plus_e: torch.Tensor  # [N, n_latent, style_dim], the erased image's code
    pyramid: Pyramid  # the encoder's features, for stage 2


class InpaintingOutput(NamedTuple):
    """What :meth:`Inpainter.decode` (and a forward pass) returns; the stage-2 fields are None after stage 1,
    ``w_r`` and ``gate`` on the deterministic path. ``{r: ...}`` dicts are keyed by fusion resolution."""

    x_erased: torch.Tensor  # [N, 3, H, W]
    mask: torch.Tensor  # [N, 1, H, W]
    w_plus_e: torch.Tensor  # [N, n_latent, style_dim]
    pyramid: Pyramid
    w_r: torch.Tensor | None  # [N, style_dim] or [N, n_latent, style_dim] = mapping(z)
    w_plus_mix: torch.Tensor  # [N, n_latent, style_dim], the mixed code G renders
    gate: torch.Tensor | None  # [N, n_latent, style_dim], the mixer's gate g
    image: torch.Tensor  # [N, 3, H, W], raw generator output (stage 2's when stage=2)
    image_stage1: torch.Tensor | None = None  # [N, 3, H, W]
    delta: dict[int, torch.Tensor] | None = None  # {r: [N, C_r, r, r]} skip-encoder residuals
    f_gen: dict[int, torch.Tensor] | None = None  # {r: G's own feature under w_plus_mix}
    f_enc: dict[int, torch.Tensor] | None = None  # {r: f_gen + delta}
    f: dict[int, torch.Tensor] | None = None  # {r: fused feature = f_gen + mask_r * delta}


class ErasedEncoder(_StyleEncoder):
    """pSp-style encoder of ``[x_erased, mask]`` (the notes §2): backbone on 4 channels, one map2style head
    per W+ row; zero-initialised heads, so an untrained encoder outputs ``w_avg`` in every row."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> ErasedEncoding:
        """x (or x_erased) [N, 3, S, S], mask [N or 1, 1, S, S] -> :class:`ErasedEncoding`; holes are zeroed
        here (idempotent for an already erased image)."""
        check_images(x, 3, self.cfg.backbone.size, "x_erased")
        mask = check_mask(mask, x).expand(x.shape[0], -1, -1, -1)
        pyramid = self.backbone(torch.cat([x * mask, mask], dim=1))  # input [N, 4, S, S]
        offsets = torch.stack([head(self._level(pyramid, i)) for i, head in enumerate(self.heads)], dim=1)
        return ErasedEncoding(self.w_avg + offsets, pyramid)  # w_plus [N, n_latent, style_dim]


class LayerwiseLinear(nn.Module):
    """An independent linear map per W+ row: [N, L, in] -> [N, L, out] (weights [L, in, out])."""

    def __init__(self, n_rows: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_rows, in_dim, out_dim) / math.sqrt(in_dim))
        self.bias = nn.Parameter(torch.zeros(n_rows, out_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nli,lio->nlo", h, self.weight) + self.bias


class MixOutput(NamedTuple):
    w_plus: torch.Tensor  # w_plus_mix [N, n_latent, style_dim]
    gate: torch.Tensor | None  # g [N, n_latent, style_dim] ("gated"), else None


class MixingNetwork(nn.Module):
    """Combines ``w_plus_e`` with ``w_r`` row by row (the notes §3; the module docstring's equation)."""

    def __init__(self, config: InpaintingConfig) -> None:
        super().__init__()
        cfg = self.cfg = config
        if cfg.mixing == "none":
            raise ValueError('MixingNetwork: mixing="none" has no mixing network')
        d, n = cfg.style_dim, cfg.n_latent
        self.gated = cfg.mixing == "gated"
        self.n_gate = d if self.gated else 0
        self.n_delta = d if (cfg.mix_candidate or not self.gated) else 0
        self.fc1 = LayerwiseLinear(n, 2 * d, cfg.mix_hidden)
        self.fc2 = LayerwiseLinear(n, cfg.mix_hidden, self.n_gate + self.n_delta)
        with torch.no_grad():
            self.fc2.weight.zero_()
            self.fc2.bias[:, : self.n_gate] = cfg.gate_bias_init
        self.register_buffer("w_avg", torch.zeros(d))

    def forward(
        self, w_plus_e: torch.Tensor, w_r: torch.Tensor, gate: float | torch.Tensor | None = None
    ) -> MixOutput:
        """w_plus_e [N, L, D], w_r [N, D] (broadcast) or [N, L, D] -> :class:`MixOutput`. ``gate`` forces
        g (e.g. 1: w_mix = c = w_e + d, 0: w_mix = w_r); only for the gated mode."""
        n, d, L = w_plus_e.shape[0], self.cfg.style_dim, self.cfg.n_latent
        check_shape(w_plus_e, [n, L, d], "w_plus_e")
        w_r = w_r.unsqueeze(1).expand(-1, L, -1) if w_r.ndim == 2 else w_r
        check_shape(w_r, [n, L, d], "w_r")
        u = torch.cat([w_plus_e - self.w_avg, w_r - self.w_avg], dim=2)  # [N, L, 2D]
        out = self.fc2(F.leaky_relu(self.fc1(u), 0.2))  # [N, L, n_gate + n_delta]
        c = w_plus_e + out[..., self.n_gate :] if self.n_delta else w_plus_e  # candidate c_l
        if not self.gated:
            if gate is not None:
                raise ValueError("gate can only be forced in the gated mixing mode")
            return MixOutput(c, None)
        g = (
            torch.sigmoid(out[..., : self.n_gate])
            if gate is None
            else torch.as_tensor(gate).to(c).expand_as(c)
        )
        return MixOutput(g * c + (1 - g) * w_r, g)


class SkipEncoder(nn.Module):
    """Stage 2 (the notes §5): residual features ``delta_r`` [N, G.channels[r], r, r] for each r in f_res."""

    def __init__(self, config: InpaintingConfig) -> None:
        super().__init__()
        cfg = self.cfg = config
        w = cfg.skip_width
        in_ch = 4 + (3 if cfg.skip_stage1_image else 0)
        self.stem = nn.Sequential(nn.Conv2d(in_ch, w, 3, 1, 1), nn.LeakyReLU(0.2))
        n_down = int(math.log2(cfg.size // cfg.f_res[0]))
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(w, w, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, w, 3, 1, 1), nn.LeakyReLU(0.2)
            )
            for _ in range(n_down)
        )
        pyr = cfg.encoder.backbone.channels if cfg.skip_pyramid else 0
        self.heads = nn.ModuleDict()
        for r, c in zip(cfg.f_res, cfg.f_channels):
            head = nn.Sequential(
                nn.Conv2d(w + pyr + c, w, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, c, 3, 1, 1)
            )
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)
            self.heads[str(r)] = head

    def forward(
        self,
        x_erased: torch.Tensor,
        mask: torch.Tensor,
        f_gen: dict[int, torch.Tensor],
        image1: torch.Tensor | None = None,
        pyramid_fine: torch.Tensor | None = None,
    ) -> dict[int, torch.Tensor]:
        """x_erased [N, 3, H, H], mask [N, 1, H, H], f_gen {r: [N, C_r, r, r]} (stage-1 features),
        image1 [N, 3, H, H] (stage-1 output), pyramid_fine [N, C, s, s] -> {r: delta_r}."""
        cfg = self.cfg
        parts = [x_erased, mask] + ([image1] if cfg.skip_stage1_image else [])
        if (cfg.skip_stage1_image and image1 is None) or (cfg.skip_pyramid and pyramid_fine is None):
            raise ValueError("SkipEncoder: this config needs image1 and/or pyramid_fine")
        h, res, deltas = self.stem(torch.cat(parts, dim=1)), cfg.size, {}  # h [N, w, H, H]
        for block in [None, *self.down]:
            if block is not None:
                h, res = block(h), res // 2
            if str(res) in self.heads:
                extra = (
                    [F.interpolate(pyramid_fine, size=(res, res), mode="bilinear")]
                    if cfg.skip_pyramid
                    else []
                )
                deltas[res] = self.heads[str(res)](torch.cat([h, *extra, f_gen[res]], dim=1))
        return deltas


def synthesis_fused(
    G: nn.Module,
    w_plus: torch.Tensor,
    noise: list,
    deltas: dict[int, torch.Tensor],
    masks: dict[int, torch.Tensor],
) -> tuple[torch.Tensor, dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """``G.synthesis`` with the mask-aware fusion ``x <- x + mask_r * delta_r`` after the block of every
    resolution r in ``deltas`` (several at once, through ``feature_hook``). Returns the image,
    the live generator features before fusion ``f_gen`` {r: ...} and the fused features ``f`` {r: ...}."""
    f_gen, f = {}, {}

    def fuse(res: int, x: torch.Tensor) -> torch.Tensor:
        if res not in deltas:
            return x
        f_gen[res] = x
        f[res] = x + masks[res] * deltas[res]  # = mask_r * (f_gen + delta) + (1 - mask_r) * f_gen
        return f[res]

    img = G.synthesis(w_plus, noise=noise, feature_hook=fuse)
    return img, f_gen, f


class Inpainter(nn.Module):
    """Erased encoder, mixing network and skip encoder around the generator ``G`` (kept as submodule ``G``
    for device moves, left out of saved checkpoints; :meth:`freeze_for_stage` freezes it)."""

    generator_ref: str | None = None  # the recorded generator (bundled name or path), set by load_inpainter

    def __init__(self, G: nn.Module, config: InpaintingConfig | None = None) -> None:
        super().__init__()
        cfg = self.cfg = config if config is not None else InpaintingConfig.for_generator(G)
        cfg.check_generator(G)
        self.G = G
        self.encoder = ErasedEncoder(cfg.encoder)
        self.mixer = MixingNetwork(cfg) if cfg.mixing != "none" else None
        self.skip = SkipEncoder(cfg)
        if torch.get_default_device().type != "meta":  # checkpoints.build_checked sizes models on "meta"
            self.to(G.input.input.device)
            self.set_w_avg(G.get_w_avg())

    @property
    def config(self) -> dict:
        return self.cfg.to_dict()

    def set_w_avg(self, w_avg: torch.Tensor) -> None:
        """Origin of the encoder's offsets and the mixer's inputs ([style_dim], normally G.get_w_avg())."""
        self.encoder.set_w_avg(w_avg)
        if self.mixer is not None:
            self.mixer.w_avg.copy_(w_avg.detach())

    def freeze_for_stage(self, stage: int) -> list[nn.Parameter]:
        """Stage 1 trains encoder + mixer, stage 2 only the skip encoder (the notes §5); G is always frozen.
        Sets requires_grad and train/eval modes (call after ``model.train()``); returns the trainable list."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.G.requires_grad_(False).eval()
        first = [m for m in (self.encoder, self.mixer) if m is not None]
        train, frozen = (first, [self.skip]) if stage == 1 else ([self.skip], first)
        for m in frozen:
            m.requires_grad_(False).eval()
        for m in train:
            m.requires_grad_(True).train(self.training)
        return [p for m in train for p in m.parameters()]

    def map_random(self, z: torch.Tensor) -> torch.Tensor:
        """w_r = mapping(z) with the config's truncation: z [N, D] -> [N, D]; z [N, L, D] -> [N, L, D]."""
        d = self.cfg.style_dim
        if z.ndim not in (2, 3) or z.shape[-1] != d:
            raise ValueError(f"z: expected [N, {d}] or [N, n_latent, {d}], got {list(z.shape)}")
        w = self.G.mapping(z.reshape(-1, d), truncation=self.cfg.truncation)
        return w.view(z.shape)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> ErasedInput:
        """Checks x [N, 3, size, size] and the mask, erases, encodes (:class:`ErasedInput`)."""
        check_images(x, 3, self.cfg.size, "x")
        mask = check_mask(mask, x).expand(x.shape[0], -1, -1, -1)  # [N, 1, H, W]
        x_erased = x * mask
        s = self.cfg.encoder.backbone.size
        x_enc, m_enc = x_erased, mask
        if s != self.cfg.size:  # pool for a smaller encoder; keep its input binary-masked
            m_enc = mask_at(mask, s, "hard")
            x_enc = F.avg_pool2d(x_erased, self.cfg.size // s) * m_enc
        w_plus_e, pyramid = self.encoder(x_enc, m_enc)
        return ErasedInput(x_erased, mask, w_plus_e, pyramid)

    def decode(
        self,
        enc: ErasedInput,
        z: torch.Tensor | None = None,
        w_r: torch.Tensor | None = None,
        stage: int = 1,
        mixing: bool = True,
        noise_mode: str = "const",
    ) -> InpaintingOutput:
        """Mix (unless deterministic) and synthesise from :meth:`encode`'s output; see :meth:`forward`."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        w_plus_e, gate = enc.w_plus_e, None
        if mixing and self.mixer is not None:
            if w_r is None and z is None:
                z = torch.randn(w_plus_e.shape[0], self.cfg.style_dim, device=w_plus_e.device)
            w_r = self.map_random(z) if w_r is None else w_r
            w_plus_mix, gate = self.mixer(w_plus_e, w_r)
        else:
            w_plus_mix, w_r = w_plus_e, None
        noise = self.G.make_noise(w_plus_e.shape[0], noise_mode)
        if stage == 1:
            image = self.G.synthesis(w_plus_mix, noise=noise)
            return InpaintingOutput(*enc, w_r, w_plus_mix, gate, image)
        image1, feats = self.G.synthesis(w_plus_mix, noise=noise, return_features=True)
        f_res = self.cfg.f_res
        deltas = self.skip(enc.x_erased, enc.mask, {r: feats[r] for r in f_res}, image1, enc.pyramid.fine)
        masks = {r: mask_at(enc.mask, r, self.cfg.fuse_mask) for r in f_res}
        image, f_gen, f = synthesis_fused(self.G, w_plus_mix, noise, deltas, masks)
        f_enc = {r: f_gen[r] + deltas[r] for r in f_res}
        return InpaintingOutput(*enc, w_r, w_plus_mix, gate, image, image1, deltas, f_gen, f_enc, f)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        z: torch.Tensor | None = None,
        stage: int = 1,
        mixing: bool = True,
        w_r: torch.Tensor | None = None,
        noise_mode: str = "const",
    ) -> InpaintingOutput:
        """x [N, 3, H, H] in [-1, 1], mask [N or 1, 1, H, H] -> :class:`InpaintingOutput` (x_erased, mask,
        w_plus_e, w_r, w_plus_mix, gate, image [N, 3, H, H]; stage 2 adds image_stage1 and the {r: ...} dicts
        delta, f_gen, f_enc, f). ``w_r`` (else ``mapping(z)``, else a fresh z) feeds the mixer;
        ``mixing=False`` (or a ``mixing="none"`` model) is the deterministic path w_plus_mix = w_plus_e."""
        return self.decode(self.encode(x, mask), z, w_r, stage, mixing, noise_mode)

    @torch.no_grad()
    def sample_outputs(
        self, x: torch.Tensor, mask: torch.Tensor, n: int = 5, seed: int = 0, stage: int = 2,
        noise_mode: str = "const",
    ) -> list[InpaintingOutput]:  # fmt: skip
        """The :meth:`decode` outputs of ``n`` completions per input (one per sample, each for all N
        inputs), from z drawn with ``seed``: what :meth:`sample` stacks, and what an edit starts from."""
        return list(self.iter_outputs(x, mask, n, seed, stage, noise_mode))

    @torch.no_grad()
    def iter_outputs(
        self, x: torch.Tensor, mask: torch.Tensor, n: int = 5, seed: int = 0, stage: int = 2,
        noise_mode: str = "const",
    ) -> Iterator[InpaintingOutput]:  # fmt: skip
        """:meth:`sample_outputs` one completion at a time (the same z): many completions in little memory."""
        enc = self.encode(x, mask)
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(x.shape[0], n, self.cfg.style_dim, generator=gen).to(x.device)  # [N, n, D]
        for k in range(n):
            yield self.decode(enc, z[:, k], stage=stage, noise_mode=noise_mode)

    @torch.no_grad()
    def sample(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        n: int = 5,
        seed: int = 0,
        stage: int = 2,
        paste: bool | str = False,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        """``n`` completions per input, [N, n, 3, H, H], from z drawn with ``seed`` (reproducible). Stage 2
        with an untrained skip encoder equals stage 1. ``paste`` composites the known pixels of ``x``:
        False / "none" (raw outputs), True / "hard" (:func:`composite`) or "seamless" (Poisson paste)."""
        mode = check_paste(paste)
        outs = self.sample_outputs(x, mask, n, seed, stage, noise_mode)
        known = (x, outs[0].mask, mode == "seamless") if mode != "none" else ()
        return stack_samples([o.image for o in outs], *known)

    composite = staticmethod(composite)


# ---------------------------------------------------------------------------------------------------------
# Saving and loading (kind "inpainter"; a bundled name resolves to data/pretrained/<name>/inpainter.pt)


def save_inpainter(path: str | os.PathLike, model: Inpainter, generator: str | None = None, **extra) -> None:
    """Write encoder, mixer and skip encoder (not G) with the config and ``G.config``. ``generator`` (a
    bundled name or a path, relative to the checkpoint's folder or absolute) lets :func:`load_inpainter`
    find G."""
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("G.")}
    if generator is not None:
        extra["generator"] = str(generator)
    save_checkpoint(path, KIND, model.config, sd, generator_config=model.G.config, **extra)


def load_inpainter(
    path_or_name: str | os.PathLike, G: nn.Module | None = None, device: str | torch.device = "cpu"
) -> Inpainter:
    """Load an :class:`Inpainter` in eval mode: a path, a folder with ``inpainter.pt`` or a bundled name.
    ``G`` defaults to the generator recorded at save time (kept as ``model.generator_ref``: a bundled name
    or a path, None if unrecorded). Raises :class:`CheckpointError` on any problem."""
    path = resolve_checkpoint(path_or_name, KIND)
    ckpt = load_checkpoint(path, KIND)
    cfg = stored_config(ckpt, InpaintingConfig.from_dict, path, "inpainting")
    ref = ckpt.get("generator")
    if isinstance(ref, str) and (path.parent / ref).is_file():
        ref = str(path.parent / ref)  # a file beside the checkpoint
    if G is None:
        if not isinstance(ref, str):
            raise CheckpointError(
                f"{path}: records no generator; pass G= (the generator it was trained with)"
            )
        G = load_generator(ref, device)
    stored = ckpt.get("generator_config")
    if isinstance(stored, dict) and stored != G.config:
        diff = sorted(k for k in set(stored) | set(G.config) if stored.get(k) != G.config.get(k))
        raise CheckpointError(f"{path}: trained with another generator (differs in {diff}): {stored}")
    G = G.to(device)
    model = build_checked(lambda: Inpainter(G, cfg), ckpt["state_dict"], path, "Inpainter", ckpt["config"])
    load_state_strict(model, ckpt["state_dict"], path, skip_prefix=("G.",))  # G is not in the file
    model.generator_ref = ref if isinstance(ref, str) else None  # where its generator's directions live
    return model.eval().to(device)
