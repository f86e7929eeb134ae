"""CLCAE stage 1: contrastive alignment of images and the foundation latent space W (Sec. 3.1 of Liu et al.,
"Delving StyleGAN Inversion for Image Editing: A Foundation Latent Space Viewpoint", CVPR 2023).

Pairs ``(I, w)`` with ``I = G(w)`` are embedded by two encoders into one space (``docs/papers/clcae.md``
§1 describes the official release; numbers below are its values):

* image encoder ``h_I``: the CNN part of pSp (our :class:`~ganinv.models.encoders.FeaturePyramid`; IR-SE50
  at 256 px in the release) on the **mean-centred** image ``I - I_avg`` (``I_avg = G(w_avg)``), one
  map2style head on the coarsest map -> ``[N, style_dim]``;
* latent encoder ``h_w``: on ``w - w_avg``, ``latent_blocks`` residual blocks
  ``t = LN(t + V'(V t)); t = LN(t + FFN(t))`` (dropout after each branch). This is what the release's
  one-token DETR-style transformer layers compute: with a single token, softmax attention is the identity
  on the value, so the query/key projections and the positional embedding have no effect
  (docs/papers/clcae.md §5, quirk 1); we keep only the value and output projections;
* projection heads ``Linear - BN - ReLU - Linear`` (no biases) for both, then L2 normalisation.

The loss is the symmetric InfoNCE of the paper (:func:`info_nce`)::

    L_i^{I->w} = -log( exp(<h_I(I_i), h_w(w_i)> / t) / sum_k exp(<h_I(I_i), h_w(w_k)> / t) )
    L_i^{w->I} = -log( exp(<h_w(w_i), h_I(I_i)> / t) / sum_k exp(<h_w(w_i), h_I(I_k)> / t) )
    L_align    = (1/S) sum_i [ lambda L_i^{I->w} + (1 - lambda) L_i^{w->I} ],   lambda = 0.5

with cosine similarity ``<.,.>`` and a learnable temperature ``t`` (initial 0.07, stored as
``logit_scale = log(1/t)``). **Deviation:** the release never clamps ``t``; we keep it in
``[min_temperature, max_temperature]`` (default [0.01, 1], CLIP's "logit scale <= 100") both in the forward
pass and, via :meth:`ContrastiveAligner.clamp_temperature_`, on the parameter after each optimiser step.

Initialisation is PyTorch's default (the release: N(0, 0.02) convolutions, truncated-normal linears). The
image trunk is a plain :class:`~ganinv.models.encoders.FeaturePyramid`, so a stage-2 encoder built on the
same :class:`~ganinv.models.encoders.EncoderConfig` can start from ``model.image_encoder.backbone`` (the
paper's intent; the release's loader silently skips it, docs/papers/clcae.md quirk 9).

In stage 2 the frozen model gives :func:`alignment_loss` on ``(G(w), w)``, as the release's code does (the
paper aligns the input image with w instead; docs/papers/clcae.md "L_align inside stage 2").
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
from .encoders import EncoderConfig, FeaturePyramid, Map2Style, check_images
from .layers import check_shape


@dataclass
class ContrastiveModelConfig(FromDict):
    """Constructor arguments of :class:`ContrastiveAligner` (the defaults suit the 64 px synthfaces64 G)."""

    backbone: EncoderConfig = field(default_factory=EncoderConfig)  # h_I's trunk; backbone.size = image size
    style_dim: int = 128  # dimension of w (G.style_dim); also h_I's and h_w's output dimension
    latent_blocks: int = 3  # residual blocks of h_w (the release's coarse / medium / fine layers)
    latent_ffn: int = 256  # hidden width of h_w's feed-forward branch (release: 1024 for w in R^512)
    embed_dim: int = 128  # joint embedding dimension (release: 512)
    dropout: float = 0.1  # dropout in h_w (release: 0.1)
    temperature: float = 0.07  # initial temperature t
    min_temperature: float = 0.01  # clamp (deviation: the release never clamps)
    max_temperature: float = 1.0
    learn_temperature: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = EncoderConfig.from_dict(self.backbone)
        for name in ("style_dim", "latent_blocks", "latent_ffn", "embed_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ContrastiveModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.min_temperature <= self.temperature <= self.max_temperature:
            raise ValueError(
                "ContrastiveModelConfig: need 0 < min_temperature <= temperature <= max_temperature, got "
                f"{self.min_temperature}, {self.temperature}, {self.max_temperature}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"ContrastiveModelConfig.dropout must be in [0, 1), got {self.dropout}")

    @property
    def size(self) -> int:
        return self.backbone.size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ProjectionHead(nn.Sequential):
    """``Linear(in, hidden) - BatchNorm1d - ReLU - Linear(hidden, out)``, both linears without bias."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_dim, bias=False),
        )


class ImageEncoder(nn.Module):
    """h_I before projection: backbone, then map2style on the coarsest map: [N, 3, S, S] -> [N, style_dim]."""

    def __init__(self, backbone: EncoderConfig, style_dim: int) -> None:
        super().__init__()
        self.backbone = FeaturePyramid(backbone)
        self.head = Map2Style(backbone.channels, style_dim, backbone.pyramid_sizes[2])

    def forward(self, image_centred: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(image_centred).coarse)


class LatentBlock(nn.Module):
    """One-token post-norm transformer layer: ``t = LN1(t + drop(out(value(t))))``, then
    ``t = LN2(t + drop(FFN(t)))`` with ``FFN = Linear - ReLU - drop - Linear`` (see the module docstring)."""

    def __init__(self, dim: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.value, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = self.norm1(t + self.drop(self.out(self.value(t))))
        return self.norm2(t + self.drop(self.ffn(t)))


class LatentEncoder(nn.Sequential):
    """h_w before projection: ``latent_blocks`` :class:`LatentBlock` s, [N, style_dim] -> [N, style_dim]."""

    def __init__(self, dim: int, n_blocks: int, ffn: int, dropout: float) -> None:
        super().__init__(*[LatentBlock(dim, ffn, dropout) for _ in range(n_blocks)])


class InfoNCE(NamedTuple):
    loss: torch.Tensor  # lambda L^{I->w} + (1 - lambda) L^{w->I}, batch mean
    image_to_latent: torch.Tensor  # mean_i L_i^{I->w}
    latent_to_image: torch.Tensor  # mean_i L_i^{w->I}
    logits: torch.Tensor  # [N, N]: <h_I(I_i), h_w(w_k)> / t; row i = image i, column k = latent k


def info_nce(
    e_image: torch.Tensor, e_latent: torch.Tensor, temperature: float | torch.Tensor, weight: float = 0.5
) -> InfoNCE:
    """Symmetric InfoNCE (the module docstring's L_align) of row-paired embeddings ``[N, D]``; rows are
    L2-normalised here, so the similarity is the cosine. ``weight`` is the paper's lambda."""
    if e_image.ndim != 2 or e_image.shape != e_latent.shape or e_image.shape[0] < 1:
        raise ValueError(
            f"info_nce: expected two embeddings [N, D] of equal shape, got {list(e_image.shape)} "
            f"and {list(e_latent.shape)}"
        )
    logits = F.normalize(e_image, dim=1) @ F.normalize(e_latent, dim=1).t() / temperature  # [N, N]
    target = torch.arange(logits.shape[0], device=logits.device)
    i2w = F.cross_entropy(logits, target)
    w2i = F.cross_entropy(logits.t(), target)
    return InfoNCE(weight * i2w + (1 - weight) * w2i, i2w, w2i, logits)


def top_k_accuracy(logits: torch.Tensor, k: int = 1) -> tuple[float, float]:
    """(image->latent, latent->image) fraction of rows / columns whose match (diagonal) is in the top k."""
    n = logits.shape[0]
    k = min(k, n)
    target = torch.arange(n, device=logits.device).unsqueeze(1)
    i2w = (logits.topk(k, dim=1).indices == target).any(1).float().mean().item()
    w2i = (logits.t().topk(k, dim=1).indices == target).any(1).float().mean().item()
    return i2w, w2i


class ContrastiveAligner(nn.Module):
    """h_I and h_w with projection heads, the learnable temperature, and the averages ``w_avg`` [style_dim]
    and ``image_avg`` [3, S, S] used for mean-centring (persistent buffers, saved with the model)."""

    def __init__(self, config: ContrastiveModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = config if config is not None else ContrastiveModelConfig()
        d, e = cfg.style_dim, cfg.embed_dim
        self.image_encoder = ImageEncoder(cfg.backbone, d)
        self.latent_encoder = LatentEncoder(d, cfg.latent_blocks, cfg.latent_ffn, cfg.dropout)
        self.image_projection = ProjectionHead(d, e, e)
        self.latent_projection = ProjectionHead(d, e, e)
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1 / cfg.temperature)), requires_grad=cfg.learn_temperature
        )
        self.register_buffer("w_avg", torch.zeros(d))
        self.register_buffer("image_avg", torch.zeros(cfg.backbone.in_channels, cfg.size, cfg.size))

    @property
    def config(self) -> dict:
        return self.cfg.to_dict()

    @property
    def image_size(self) -> int:
        return self.cfg.size

    @classmethod
    def from_generator(cls, G: nn.Module, config: ContrastiveModelConfig) -> ContrastiveAligner:
        """A fresh model whose averages are G's: ``w_avg = G.get_w_avg()``, ``image_avg = G(w_avg)``
        (constant noise), pooled to the model's image size."""
        model = cls(config)
        model.set_averages(G)
        return model

    @torch.no_grad()
    def set_averages(self, G: nn.Module) -> None:
        if G.style_dim != self.cfg.style_dim:
            raise ValueError(f"generator style_dim {G.style_dim} != model style_dim {self.cfg.style_dim}")
        w_avg = G.get_w_avg()  # [style_dim], on G's device
        image = G.synthesis(w_avg[None], noise_mode="const")  # [1, 3, G.size, G.size]
        self.w_avg.copy_(w_avg)
        self.image_avg.copy_(pool_to(image, self.cfg.size)[0])

    # -- temperature ----------------------------------------------------------------------------------

    def _scale_bounds(self) -> tuple[float, float]:
        return math.log(1 / self.cfg.max_temperature), math.log(1 / self.cfg.min_temperature)

    @property
    def temperature(self) -> torch.Tensor:
        """The clamped temperature t = exp(-logit_scale), a scalar tensor (differentiable inside bounds)."""
        lo, hi = self._scale_bounds()
        return torch.exp(-self.logit_scale.clamp(lo, hi))

    @torch.no_grad()
    def clamp_temperature_(self) -> None:
        """Clamp the stored logit scale in place (call after each optimiser step, as open_clip does)."""
        self.logit_scale.clamp_(*self._scale_bounds())

    # -- embeddings -----------------------------------------------------------------------------------

    def embed_image(self, image: torch.Tensor) -> torch.Tensor:
        """image [N, 3, S, S] in [-1, 1] -> L2-normalised h_I(I - I_avg) [N, embed_dim]."""
        check_images(image, self.cfg.backbone.in_channels, self.cfg.size)
        features = self.image_encoder(image - self.image_avg)  # [N, style_dim]
        return F.normalize(self.image_projection(features), dim=1)

    def embed_latent(self, w: torch.Tensor) -> torch.Tensor:
        """w [N, style_dim] (W only, not w+) -> L2-normalised h_w(w - w_avg) [N, embed_dim]."""
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"w: expected a torch.Tensor [N, {self.cfg.style_dim}], got {type(w).__name__}")
        check_shape(w, [None, self.cfg.style_dim], "w (one code per image, W space)")
        features = self.latent_encoder(w - self.w_avg)  # [N, style_dim]
        return F.normalize(self.latent_projection(features), dim=1)

    def forward(self, image: torch.Tensor, w: torch.Tensor) -> InfoNCE:
        """The stage-1 loss of a batch of pairs (``image[i] = G(w[i])``), negatives within the batch."""
        return info_nce(self.embed_image(image), self.embed_latent(w), self.temperature)


def alignment_loss(model: ContrastiveAligner, image: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """L_align for stage 2 with the **frozen** stage-1 model: the symmetric InfoNCE of (image, w) pairs, e.g.
    ``(G(w), w)`` as in the release. Gradients reach ``image`` and ``w`` only. Images larger than the model's
    size (a multiple of it) are average-pooled to it first. Needs N >= 2 pairs (in-batch negatives)."""
    if model.training or any(p.requires_grad for p in model.parameters()):
        raise ValueError("alignment_loss needs a frozen model: call model.eval().requires_grad_(False)")
    if image.ndim != 4 or w.ndim != 2 or image.shape[0] != w.shape[0] or w.shape[0] < 2:
        raise ValueError(
            f"alignment_loss: expected image [N, 3, H, W] and w [N, style_dim] with N >= 2, got "
            f"{list(image.shape)} and {list(w.shape)}"
        )
    return model(pool_to(image, model.image_size), w).loss


# ---------------------------------------------------------------------------------------------------------
# Saving and loading (kind "contrastive"; a bundled name resolves to data/pretrained/<name>/contrastive.pt)


def save_contrastive(path: str | os.PathLike, model: ContrastiveAligner, half: bool = False, **extra) -> None:
    """Write both encoders, heads, temperature and averages as one ganinv checkpoint of kind "contrastive"
    (``half``: floating tensors stored as fp16, cast back on loading)."""
    save_checkpoint(path, "contrastive", model.config, model.state_dict(), half=half, **extra)


def load_contrastive(
    path_or_name: str | os.PathLike, device: str | torch.device = "cpu"
) -> ContrastiveAligner:
    """Load a stage-1 model frozen (eval mode, no gradients): a path, a folder with ``contrastive.pt`` or a
    bundled name. Raises :class:`CheckpointError` on any problem."""
    ckpt = load_checkpoint(path_or_name, "contrastive")
    cfg = stored_config(ckpt, ContrastiveModelConfig.from_dict, path_or_name, "contrastive")
    sd = ckpt["state_dict"]
    model = build_checked(lambda: ContrastiveAligner(cfg), sd, path_or_name, "contrastive", ckpt["config"])
    load_state_strict(model, sd, path_or_name)
    return model.eval().requires_grad_(False).to(device)
