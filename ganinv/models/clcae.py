"""CLCAE stage 2: the cross-attention inversion encoder (Sec. 3.2 of Liu et al., "Delving StyleGAN Inversion
for Image Editing: A Foundation Latent Space Viewpoint", CVPR 2023; ``docs/papers/clcae.md`` §2; the § and
quirk numbers below are that file's).

From the mean-centred image ``x - x_avg`` (``x_avg = G(w_avg)``) a feature pyramid (coarse, medium, fine; the
paper's T1, T2, T3) gives

* the **foundation code** ``w = w_avg + w_off`` with ``w_off = map2style(coarse)`` (the last layer is zero-
  initialised, so an untrained encoder gives ``w = w_avg`` exactly);
* the **W+ code**, one cross-attention block per generator layer ``i`` with ``w_off`` as the query:
  ``w_plus_i = w + o_i``, ``o_i = Block_i(query=w_off, key/value=tokens_i)`` (paper: w⁺_i = w +
  Attention(Q, K, V), Q = w W_Q, K = Δw_i W_K, V = Δw_i W_V). Each block is a DETR decoder layer without
  self-attention: ``t = LN1(q + Drop(Attn(q, k, v)))``, ``o = LN2(t + Drop(FFN(t)))``;
* the **F feature** ``f = CNN[Block_F(query=T3 pixels, key/value=w tokens)]`` of G's shape at ``f_res``
  (paper: f = CNN[Attention(T3 W_Q, w W_K, w W_V) + T3]); the CNN is ``log2(fine / f_res)`` stride-2 3x3
  convs (one stride-1 conv when the sizes agree), each followed by LeakyReLU(0.01), as the release's
  ``GradualFeatureBlock`` (so f ends in a LeakyReLU, quirk kept).

``attention="single"`` is the release (quirk 1): the key/value of a W+ block is the
single pooled token ``Δw_i = map2style_i(level_i)`` (``Δw_0 = w_off``), and the F block's is the single token
``w_off``. Softmax over one key is 1, so the attention **reduces to a linear map of that token**, ``W_o(W_v
kv + b_v) + b_o``, whatever the query: W_Q and W_K get no gradient, w enters a W+ block only through the
residual, and the F block adds the same vector to every T3 pixel (FiLM-like). ``attention="multi"`` is real
attention: a W+ block attends over all spatial tokens of its pyramid level (plus a learned positional
embedding on the keys, so spatial arrangement matters), and the F block's pixels attend over the ``n_latent``
w+ tokens (``w_plus - w_avg`` plus a learned layer embedding on the keys). Both variants use the same code
otherwise.

Ablation switches (§6): ``use_wplus_attention=False`` (the release's ``--no_w_attention``):
``w_plus_i = w + Δw_i`` straight from the map2style heads (row 0 is ``w``; the release adds ``w_off`` twice
there, we do not); ``use_f_attention=False`` (``--no_feature_attention``, the paper's "w/o F
cross-attention"): f from the same CNN on T3 alone, with no w conditioning (the release uses a conv-BN-PReLU
CNN there); ``use_f=False`` (``--not_for_feature``): no F branch, ``out.f is None`` (CLCAE_W⁺).

Deviations, all documented choices: ``zero_init=True`` also zeroes the final LayerNorm (γ, β) of every W+
block and the last layer of the ablation's map2style heads, so an untrained model gives ``w_plus = w``
(the release's o_i ends in a unit-variance LayerNorm, quirk 2; ``zero_init=False`` restores that);
PyTorch's default initialisation elsewhere (the release: N(0, 0.02) / truncated normal); mean-centred codes
``w - w_avg`` as attention inputs throughout (the release uses ``w_off`` as query and F key/value).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import build_checked, load_checkpoint, load_state_strict, save_checkpoint, stored_config
from ..configs import FromDict
from ..data.images import pool_to
from .contrastive import ContrastiveAligner
from .encoders import EncoderConfig, FeaturePyramid, Map2Style, Pyramid, check_images
from .layers import check_shape

ATTENTION_MODES = ("single", "multi")
RECONSTRUCT_MODES = ("w", "w_plus", "f")


@dataclass
class CLCAEConfig(FromDict):
    """Constructor arguments of :class:`CLCAE` (defaults: the 64 px synthfaces64 G, "small" backbone)."""

    backbone: EncoderConfig = field(default_factory=EncoderConfig)  # backbone.size = encoder input size
    n_latent: int = 10  # G.n_latent (number of w+ rows)
    style_dim: int = 128  # G.style_dim
    f_res: int = 16  # resolution of the F space: f replaces G's feature after the second conv at f_res
    f_channels: int = 128  # G.channels[f_res]
    attention: str = "single"  # "single": the release (one-token attention); "multi": over spatial tokens
    heads: int = 4  # attention heads (release: 4); must divide style_dim and backbone.channels
    ffn_mult: int = 2  # FFN hidden width = ffn_mult * dim (release: 1024 for 512)
    dropout: float = 0.1  # dropout in the attention blocks (release: 0.1)
    coarse_ind: int = 3  # tokens [0, coarse_ind) read the coarse map (token 0 is w_off); pSp's split
    middle_ind: int = 7  # tokens [coarse_ind, middle_ind) read the medium map, the rest the fine map
    use_wplus_attention: bool = True  # False: w_plus_i = w + map2style_i (release --no_w_attention)
    use_f: bool = True  # False: no F branch at all (release --not_for_feature)
    use_f_attention: bool = True  # False: f = CNN(T3) without w (release --no_feature_attention)
    zero_init: bool = True  # untrained model gives w = w_plus = w_avg (see the module docstring)

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = EncoderConfig.from_dict(self.backbone)
        if self.attention not in ATTENTION_MODES:
            raise ValueError(
                f"CLCAEConfig.attention must be one of {ATTENTION_MODES}, got {self.attention!r}"
            )
        for name in ("n_latent", "style_dim", "f_channels", "heads", "ffn_mult"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CLCAEConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.coarse_ind <= self.middle_ind:
            raise ValueError(f"need 0 <= coarse_ind <= middle_ind, got {self.coarse_ind}, {self.middle_ind}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"CLCAEConfig.dropout must be in [0, 1), got {self.dropout}")
        fine = self.backbone.pyramid_sizes[0]
        if self.f_res < 8 or self.f_res & (self.f_res - 1) or self.f_res > fine:
            raise ValueError(
                f"CLCAEConfig.f_res must be a power of two in [8, {fine}] (the fine pyramid level of a "
                f"{self.backbone.size} px backbone), got {self.f_res}"
            )
        dims = [("style_dim", self.style_dim)]
        if self.use_f and self.use_f_attention:
            dims.append(("backbone.channels", self.backbone.channels))
        for name, dim in dims:
            if dim % self.heads:
                raise ValueError(f"CLCAEConfig.heads ({self.heads}) must divide {name} ({dim})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def for_generator(
        cls, G: nn.Module, backbone: str = "small", size: int | None = None, f_res: int = 16, **kw
    ) -> CLCAEConfig:
        """Config for ``G`` (n_latent, style_dim, channels at ``f_res``) on a named backbone at ``size``."""
        if f_res not in G.channels:
            raise ValueError(f"f_res {f_res} is not a resolution of the {G.size} px generator")
        bb = EncoderConfig.preset(backbone, size=size or G.size)
        return cls(
            backbone=bb, n_latent=G.n_latent, style_dim=G.style_dim, f_res=f_res,
            f_channels=G.channels[f_res], **kw,
        )  # fmt: skip


class CLCAEOutput(NamedTuple):
    """``w`` [N, style_dim], ``w_plus`` [N, n_latent, style_dim], ``f`` [N, f_channels, f_res, f_res]|None."""

    w: torch.Tensor
    w_plus: torch.Tensor
    f: torch.Tensor | None


class CrossAttention(nn.Module):
    """Multi-head attention with separate query and key/value widths: [N, Lq, dim] x [N, Lk, kv_dim] ->
    [N, Lq, dim]; dropout on the attention weights as ``nn.MultiheadAttention``."""

    def __init__(self, dim: int, kv_dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q, self.k = nn.Linear(dim, dim), nn.Linear(kv_dim, dim)
        self.v, self.out = nn.Linear(kv_dim, dim), nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        n, lq, dim = query.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # [N, L, dim] -> [N, heads, L, dim / heads]
            return t.view(n, t.shape[1], h, dim // h).transpose(1, 2)

        p = self.dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(
            split(self.q(query)), split(self.k(key)), split(self.v(value)), None, p
        )
        return self.out(o.transpose(1, 2).reshape(n, lq, dim))

    @torch.no_grad()
    def weights(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """The attention weights softmax(q k^T / sqrt(d_head)) of :meth:`forward`, for looking at them:
        [N, heads, Lq, Lk], each row sums to 1 (forward computes them fused and never stores them)."""
        n, h = query.shape[0], self.heads
        q = self.q(query).view(n, query.shape[1], h, -1).transpose(1, 2)  # [N, heads, Lq, d_head]
        k = self.k(key).view(n, key.shape[1], h, -1).transpose(1, 2)  # [N, heads, Lk, d_head]
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)


class AttentionBlock(nn.Module):
    """The release's ``CrossAttention`` layer (a post-norm DETR decoder layer without self-attention):
    ``t = LN1(q + Drop(Attn(q, k, v)))``, ``out = LN2(t + Drop(FFN(t)))``, FFN = Linear-ReLU-Drop-Linear."""

    def __init__(self, dim: int, kv_dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.attn = CrossAttention(dim, kv_dim, heads, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor | None = None
    ) -> torch.Tensor:
        t = self.norm1(query + self.drop1(self.attn(query, key, key if value is None else value)))
        return self.norm2(t + self.drop2(self.ffn(t)))


def feature_cnn(in_ch: int, out_ch: int, spatial_in: int, spatial_out: int) -> nn.Sequential:
    """The release's ``GradualFeatureBlock``: 3x3 stride-2 convs + LeakyReLU(0.01) from ``spatial_in`` down to
    ``spatial_out`` (a single stride-1 conv + LeakyReLU when they are equal)."""
    n_down = int(math.log2(spatial_in // spatial_out))
    layers: list[nn.Module] = []
    for i in range(max(1, n_down)):
        layers += [
            nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, 2 if n_down else 1, 1),
            nn.LeakyReLU(0.01),
        ]
    return nn.Sequential(*layers)


class CLCAE(nn.Module):
    """The stage-2 encoder (see the module docstring); ``forward(image) -> CLCAEOutput(w, w_plus, f)``.

    Buffers ``w_avg`` [style_dim] and ``image_avg`` [3, S, S] (persistent, saved with the model) are the
    origin of ``w`` and the mean image subtracted from the input; set both with :meth:`set_averages`.
    """

    def __init__(self, config: CLCAEConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = config if config is not None else CLCAEConfig()
        d, c, bb = cfg.style_dim, cfg.backbone.channels, cfg.backbone
        sizes = dict(zip(Pyramid._fields, bb.pyramid_sizes[::-1]))  # {"coarse": s3, "medium": s2, "fine": s1}
        self.backbone = FeaturePyramid(bb)
        self.w_head = Map2Style(c, d, sizes["coarse"], zero_init=cfg.zero_init)  # w_off
        multi = cfg.attention == "multi"
        if not (cfg.use_wplus_attention and multi):  # Δw_i tokens, i >= 1 (token 0 is w_off)
            zero = cfg.zero_init and not cfg.use_wplus_attention
            levels = [self._level_name(i) for i in range(1, cfg.n_latent)]
            self.delta_heads = nn.ModuleList(Map2Style(c, d, sizes[k], zero_init=zero) for k in levels)
        if cfg.use_wplus_attention:
            kv_dim = c if multi else d
            blocks = [
                AttentionBlock(d, kv_dim, cfg.heads, cfg.ffn_mult * d, cfg.dropout)
                for _ in range(cfg.n_latent)
            ]
            self.wplus_blocks = nn.ModuleList(blocks)
            if cfg.zero_init:
                for block in blocks:
                    nn.init.zeros_(block.norm2.weight)
                    nn.init.zeros_(block.norm2.bias)
            if multi:  # learned positional embeddings of each level's tokens, added to the keys
                pos = {k: nn.Parameter(0.02 * torch.randn(s * s, c)) for k, s in sizes.items()}
                self.pos = nn.ParameterDict(pos)  # [s*s, C] per level
        if cfg.use_f:
            if cfg.use_f_attention:
                self.f_block = AttentionBlock(c, d, cfg.heads, cfg.ffn_mult * c, cfg.dropout)
                if multi:  # learned layer embedding of the w+ tokens, added to the keys
                    self.layer_embed = nn.Parameter(0.02 * torch.randn(cfg.n_latent, d))
            self.f_cnn = feature_cnn(c, cfg.f_channels, sizes["fine"], cfg.f_res)
        self.register_buffer("w_avg", torch.zeros(d))
        self.register_buffer("image_avg", torch.zeros(bb.in_channels, bb.size, bb.size))

    @property
    def config(self) -> dict:
        return self.cfg.to_dict()

    def _level_name(self, i: int) -> str:
        return "coarse" if i < self.cfg.coarse_ind else "medium" if i < self.cfg.middle_ind else "fine"

    # -- setup ----------------------------------------------------------------------------------------

    @classmethod
    def from_generator(cls, G: nn.Module, config: CLCAEConfig) -> CLCAE:
        """A fresh model for ``G`` with its averages set (:meth:`set_averages`)."""
        model = cls(config)
        model.set_averages(G)
        return model

    @torch.no_grad()
    def set_averages(self, G: nn.Module) -> None:
        """``w_avg = G.get_w_avg()``, ``image_avg = G(w_avg)`` (constant noise) pooled to the encoder size."""
        self.check_generator(G)
        w_avg = G.get_w_avg()
        self.w_avg.copy_(w_avg)
        self.image_avg.copy_(pool_to(G.synthesis(w_avg[None], noise_mode="const"), self.cfg.backbone.size)[0])

    def check_generator(self, G: nn.Module) -> None:
        """ValueError unless ``G`` has this model's style_dim, n_latent and channels at f_res."""
        cfg = self.cfg
        got = (G.style_dim, G.n_latent, G.channels.get(cfg.f_res))
        if got != (cfg.style_dim, cfg.n_latent, cfg.f_channels):
            raise ValueError(
                f"generator (style_dim, n_latent, channels[{cfg.f_res}]) = {got} does not match the CLCAE "
                f"config {(cfg.style_dim, cfg.n_latent, cfg.f_channels)}; use CLCAEConfig.for_generator(G)"
            )

    @torch.no_grad()
    def load_backbone_from(self, aligner: ContrastiveAligner, with_head: bool = False) -> None:
        """Start from the stage-1 image encoder h_I (the paper's intent; quirk 9): copy its backbone
        and, with ``with_head``, its map2style head into the w head (then w no longer starts at w_avg)."""
        if aligner.cfg.backbone != self.cfg.backbone or aligner.cfg.style_dim != self.cfg.style_dim:
            raise ValueError(
                f"contrastive model (backbone {aligner.cfg.backbone}, style_dim {aligner.cfg.style_dim}) "
                f"does not match this encoder (backbone {self.cfg.backbone}, style_dim {self.cfg.style_dim})"
            )
        self.backbone.load_state_dict(aligner.image_encoder.backbone.state_dict())
        if with_head:
            self.w_head.load_state_dict(aligner.image_encoder.head.state_dict())

    # -- forward --------------------------------------------------------------------------------------

    def forward(self, image: torch.Tensor, w_shift: torch.Tensor | None = None) -> CLCAEOutput:
        """image [N, 3, S, S] in [-1, 1] -> :class:`CLCAEOutput`. ``w_shift`` ([style_dim] or [N, style_dim],
        e.g. an InterFaceGAN direction times a factor) is added to ``w_off`` before both attention modules,
        as the release's editing script does (§4)."""
        cfg = self.cfg
        check_images(image, cfg.backbone.in_channels, cfg.backbone.size)
        pyramid = self.backbone(image - self.image_avg)
        w_off = self.w_head(pyramid.coarse)  # [N, style_dim]
        if w_shift is not None:
            if w_shift.ndim == 1:
                w_shift = w_shift.unsqueeze(0).expand(image.shape[0], -1)
            check_shape(w_shift, [image.shape[0], cfg.style_dim], "w_shift")
            w_off = w_off + w_shift
        w = self.w_avg + w_off  # [N, style_dim]
        w_plus = w.unsqueeze(1) + self._wplus_offsets(pyramid, w_off)  # [N, n_latent, style_dim]
        f = self._feature(pyramid.fine, w_off, w_plus) if cfg.use_f else None
        return CLCAEOutput(w, w_plus, f)

    def _delta_tokens(self, pyramid: Pyramid, w_off: torch.Tensor) -> list[torch.Tensor]:
        """Δw = [w_off, map2style_i(level_i) for i >= 1], each [N, style_dim]."""
        return [w_off] + [
            head(getattr(pyramid, self._level_name(i + 1))) for i, head in enumerate(self.delta_heads)
        ]

    def _wplus_offsets(self, pyramid: Pyramid, w_off: torch.Tensor) -> torch.Tensor:
        """Per-layer offsets o_i with w_plus_i = w + o_i: [N, n_latent, style_dim]."""
        cfg = self.cfg
        if not cfg.use_wplus_attention:
            return torch.stack([torch.zeros_like(w_off)] + self._delta_tokens(pyramid, w_off)[1:], dim=1)
        query = w_off.unsqueeze(1)  # [N, 1, style_dim]
        if cfg.attention == "single":
            tokens = self._delta_tokens(pyramid, w_off)
            rows = [block(query, t.unsqueeze(1)) for block, t in zip(self.wplus_blocks, tokens)]
        else:
            flat = {k: getattr(pyramid, k).flatten(2).transpose(1, 2) for k in Pyramid._fields}  # [N, s*s, C]
            rows = []
            for i, block in enumerate(self.wplus_blocks):
                name = self._level_name(i)
                rows.append(block(query, flat[name] + self.pos[name], flat[name]))
        return torch.cat(rows, dim=1)

    def _feature(self, fine: torch.Tensor, w_off: torch.Tensor, w_plus: torch.Tensor) -> torch.Tensor:
        """f = CNN[Block_F(T3 pixels; w tokens)]: [N, f_channels, f_res, f_res]."""
        cfg = self.cfg
        if cfg.use_f_attention:
            n, c, h, wd = fine.shape
            pixels = fine.flatten(2).transpose(1, 2)  # [N, h*w, C]
            if cfg.attention == "single":
                t = self.f_block(pixels, w_off.unsqueeze(1))
            else:
                kv = w_plus - self.w_avg  # [N, n_latent, style_dim]
                t = self.f_block(pixels, kv + self.layer_embed, kv)
            fine = t.transpose(1, 2).reshape(n, c, h, wd)
        return self.f_cnn(fine)

    def reconstruct(self, G: nn.Module, out: CLCAEOutput, mode: str = "f", **kw) -> torch.Tensor:
        """:func:`reconstruct` after checking that ``G`` fits this model."""
        self.check_generator(G)
        return reconstruct(G, out, mode, **kw)


# ---------------------------------------------------------------------------------------------------------
# Using the outputs with the generator


def reconstruct(
    G: nn.Module,
    out: CLCAEOutput,
    mode: str = "f",
    f_blend: float | torch.Tensor = 1.0,
    noise_mode: str = "const",
    noise: list | None = None,
) -> torch.Tensor:
    """The paper's three images: I¹ = G(w) (``mode="w"``), I² = G(w⁺) (``"w_plus"``), I³ = G(w⁺, f)
    (``"f"``: f replaces G's feature at ``f_res = f.shape[-1]``, as ``(1 - f_blend) own + f_blend f``)."""
    if mode not in RECONSTRUCT_MODES:
        raise ValueError(f"mode must be one of {RECONSTRUCT_MODES}, got {mode!r}")
    kw = dict(noise_mode=noise_mode, noise=noise)
    if mode == "w":
        return G.synthesis(out.w, **kw)
    if mode == "w_plus":
        return G.synthesis(out.w_plus, **kw)
    if out.f is None:
        raise ValueError("mode='f' needs an F feature, but out.f is None (model built with use_f=False)")
    return G.synthesis(out.w_plus, f=out.f, f_res=out.f.shape[-1], f_blend=f_blend, **kw)


def own_feature(
    G: nn.Module, w_plus: torch.Tensor, f_res: int = 16, noise_mode: str = "const", noise: list | None = None
) -> torch.Tensor:
    """G's own feature at ``f_res`` for ``w_plus`` (G⁵(w⁺) of the paper), [N, C(f_res), f_res, f_res]: the
    target of the F regulariser and the reference of the editing rule :func:`edit_feature`."""
    return G.synthesis(w_plus, noise_mode=noise_mode, noise=noise, return_features=True)[1][f_res]


def edit_feature(
    G: nn.Module,
    f: torch.Tensor,
    w_plus: torch.Tensor,
    w_plus_edited: torch.Tensor,
    noise_mode: str = "const",
) -> torch.Tensor:
    """The paper's F editing rule: ``f̂ = f + G⁵(ŵ⁺) - G⁵(w⁺)`` (§4)."""
    f_res = f.shape[-1]
    return f + own_feature(G, w_plus_edited, f_res, noise_mode) - own_feature(G, w_plus, f_res, noise_mode)


@torch.no_grad()
def attention_maps(model: CLCAE, image: torch.Tensor) -> dict[str, object]:
    """Where the multi-token cross-attention looks, averaged over heads (for figures):
    ``"wplus"``: a list of ``n_latent`` maps [N, s_i, s_i], layer i's query w_off over the s_i x s_i tokens
    of its pyramid level; ``"f"``: [N, n_latent, h, w], for each T3 pixel its weight on each w+ token.
    ValueError for ``attention="single"`` (one key per query: every weight is 1)."""
    cfg = model.cfg
    if cfg.attention != "multi" or not (cfg.use_wplus_attention or cfg.use_f_attention):
        raise ValueError(
            "attention maps exist only for attention='multi' with an attention module; the single-token "
            "release attends over one token, whose weight is always 1"
        )
    check_images(image, cfg.backbone.in_channels, cfg.backbone.size)
    pyramid = model.backbone(image - model.image_avg)
    w_off = model.w_head(pyramid.coarse)  # [N, style_dim]
    maps: dict[str, object] = {"wplus": None, "f": None}
    if cfg.use_wplus_attention:
        maps["wplus"] = []
        for i, block in enumerate(model.wplus_blocks):
            level = getattr(pyramid, model._level_name(i))  # [N, C, s, s]
            keys = level.flatten(2).transpose(1, 2) + model.pos[model._level_name(i)]  # [N, s*s, C]
            a = block.attn.weights(w_off.unsqueeze(1), keys).mean(1)[:, 0]  # [N, s*s]
            maps["wplus"].append(a.view(-1, *level.shape[-2:]))
    if cfg.use_f and cfg.use_f_attention:
        w_plus = (model.w_avg + w_off).unsqueeze(1) + model._wplus_offsets(pyramid, w_off)  # as forward
        kv = w_plus - model.w_avg  # [N, n_latent, style_dim]
        n, _, h, wd = pyramid.fine.shape
        pixels = pyramid.fine.flatten(2).transpose(1, 2)  # [N, h*w, C]
        a = model.f_block.attn.weights(pixels, kv + model.layer_embed).mean(1)  # [N, h*w, n_latent]
        maps["f"] = a.transpose(1, 2).reshape(n, -1, h, wd)
    return maps


def f_blend_at(step: int, ramp_steps: int, restart: bool = False) -> float:
    """Blend factor s of f at a training step: ``min(1, step / ramp_steps)`` (1 when ``ramp_steps <= 0``).

    ``restart=True`` is the release's schedule, s = batch_idx / (len(loader) - 1) restarting at 0 every epoch
    (quirk 7), with ``ramp_steps = len(loader) - 1``. At test time s = 1.
    """
    if ramp_steps <= 0:
        return 1.0
    if restart:
        step = step % (ramp_steps + 1)
    return min(1.0, max(0, step) / ramp_steps)


# ---------------------------------------------------------------------------------------------------------
# Saving and loading (kind "clcae"; a bundled name resolves to data/pretrained/<name>/clcae.pt)


def save_clcae(path: str | os.PathLike, model: CLCAE, **extra) -> None:
    """Write the encoder (config, weights, ``w_avg``, ``image_avg``) as a ganinv checkpoint, kind "clcae"."""
    save_checkpoint(path, "clcae", model.config, model.state_dict(), **extra)


def load_clcae(path_or_name: str | os.PathLike, device: str | torch.device = "cpu") -> CLCAE:
    """Load a :func:`save_clcae` file in eval mode: a path, a folder with ``clcae.pt`` or a bundled name.
    Raises :class:`~ganinv.checkpoints.CheckpointError` on any problem."""
    ckpt = load_checkpoint(path_or_name, "clcae")
    cfg = stored_config(ckpt, CLCAEConfig.from_dict, path_or_name, "CLCAE")
    model = build_checked(lambda: CLCAE(cfg), ckpt["state_dict"], path_or_name, "CLCAE", ckpt["config"])
    load_state_strict(model, ckpt["state_dict"], path_or_name)
    return model.eval().to(device)
