"""The released pSp, e4e and CLCAE inversion encoders, rebuilt under their released parameter names.

Each class reproduces one released module so that the ``encoder.*`` weights of an official checkpoint load
into it with ``load_state_dict(strict=True)`` (:func:`ganinv.official_checkpoints.load_encoder` does that):

=====================================  ==================================================================
class                                  released module
=====================================  ==================================================================
:class:`PSPGradualStyleEncoder`        pSp ``models/encoders/psp_encoders.py: GradualStyleEncoder``
                                       (Richardson et al., CVPR 2021, Sec. 3, Fig. 2)
:class:`E4EEncoder4Editing`            e4e ``models/encoders/psp_encoders.py: Encoder4Editing``
                                       (Tov et al., SIGGRAPH 2021, Sec. 4: one w plus per-layer deltas)
:class:`ReleaseCrossAttention`         CLCAE ``models/encoders/transformer.py: CrossAttention``
:class:`CLCAEReleaseEncoder`           CLCAE ``models/encoders/psp_encoders.py: GradualStyleEncoder``
                                       with ``for_image=False`` (Liu et al., CVPR 2023, Sec. 3.2;
                                       docs/papers/clcae.md §2)
=====================================  ==================================================================

:class:`OfficialEncoder` wraps one of them with what the releases keep outside the encoder: ``latent_avg``
(added to the codes as pSp's ``start_from_latent_avg`` does), CLCAE's average image (subtracted from the
input, §1.1 / quirk 5) and the stored ``opts``. Inputs are 256x256 RGB in [-1, 1] (pSp's ``transform_test``:
resize to 256, ``Normalize(0.5, 0.5)``); :meth:`OfficialEncoder.prepare` resizes other square sizes.

Token layout (n_styles N = 2 log2(size) - 2, 18 for 1024 px): pSp / e4e heads 0-2 read c3 (16x16), 3-6 p2
(32x32), 7.. p1 (64x64). CLCAE: ``styles.0`` on c3 gives w_off, ``styles_others.0-1`` c3, ``2-5`` p2, ``6..``
p1, so its tokens [w_off, Δw_1, ..., Δw_{N-1}] follow the same 3 / 4 / rest split.

Test-time behaviour only: dropout is off (eval), e4e's progressive stage is a training mask (at inference all
deltas are used), CLCAE's F blend factor is 1 (§2.5) and its f replaces G's feature *after* the 16x16 ToRGB,
where the 32x32 block reads it (``Generator.synthesis(f_before_rgb=False)``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import Map2Style
from .official_backbone import IRSE50_WIDTHS, IRSE50Trunk, level_of, style_heads

KINDS = ("psp", "e4e", "clcae")
F_BRANCHES = ("attention", "cnn", None)  # CLCAE: released F cross-attention, --no_feature_attention, none
INPUT_SIZE = 256  # every release resizes its input to 256 px
F_RES = 16  # CLCAE's f: 64x64 T3 -> two stride-2 convs -> 16x16, G's feature 5 (idx_k = 5)


@dataclass
class OfficialConfig:
    """What a released encoder's state dict and ``opts`` determine (inferred by ganinv.official_checkpoints).

    ``kind`` "psp" | "e4e" | "clcae"; ``n_styles`` = 2 log2(G size) - 2; ``style_dim`` the code width (512);
    ``input_nc`` input channels (3 = RGB); ``widths`` IR-SE50 stage widths. CLCAE only: ``w_attention``
    (False = ``--no_w_attention``), ``f_branch`` ("attention" as released, "cnn" = ``--no_feature_attention``,
    None = ``--not_for_feature``, a W+ model), ``no_res`` (``--no_res``: key/value of the F attention from a
    deconvolution stack), ``heads`` (4, not readable from the weights) and ``ffn_dim`` (1024).
    """

    kind: str
    n_styles: int = 18
    style_dim: int = 512
    input_nc: int = 3
    widths: tuple[int, ...] = IRSE50_WIDTHS
    w_attention: bool = True
    f_branch: str | None = "attention"
    no_res: bool = False
    heads: int = 4
    ffn_dim: int = 1024

    def __post_init__(self) -> None:
        self.widths = tuple(int(c) for c in self.widths)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.n_styles < 4 or self.n_styles % 2:
            raise ValueError(f"n_styles must be 2 log2(size) - 2 for a size >= 8, got {self.n_styles}")
        if self.f_branch not in F_BRANCHES:
            raise ValueError(f"f_branch must be one of {F_BRANCHES}, got {self.f_branch!r}")
        if self.kind == "clcae":
            if self.widths[3] != self.style_dim:
                raise ValueError(
                    f"CLCAE needs T3 channels == style_dim, got {self.widths[3]} != {self.style_dim}"
                )
            if self.f_branch is not None and self.n_styles < 8:
                raise ValueError("CLCAE's F branch injects at 16x16 and needs a generator of 32 px or more")
            if self.style_dim % self.heads:
                raise ValueError(f"style_dim {self.style_dim} is not divisible by {self.heads} heads")

    @property
    def output_size(self) -> int:
        """The generator resolution the encoder was trained for: 2 ** ((n_styles + 2) / 2)."""
        return 2 ** ((self.n_styles + 2) // 2)

    def to_dict(self) -> dict:
        return asdict(self)


class OfficialCodes(NamedTuple):
    """Codes of one pass: ``w`` [N, D] (e4e's base code, CLCAE's foundation code; None for pSp), ``w_plus``
    [N, L, D], ``f`` [N, C, 16, 16] (CLCAE with an F branch, else None)."""

    w: torch.Tensor | None
    w_plus: torch.Tensor
    f: torch.Tensor | None


# ---------------------------------------------------------------------------------------------------------
# pSp and e4e


class PSPGradualStyleEncoder(IRSE50Trunk):
    """pSp's ``GradualStyleEncoder``: one map2style head per style, on c3 / p2 / p1 by the 3 / 7 split.
    x [N, input_nc, 256, 256] -> offsets [N, n_styles, style_dim] (pSp adds ``latent_avg`` outside)."""

    def __init__(self, n_styles: int, style_dim: int = 512, input_nc: int = 3, widths=IRSE50_WIDTHS) -> None:
        super().__init__(input_nc, widths)
        self.styles = style_heads(n_styles, self.widths[3], style_dim, 3, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.pyramid(x)  # c3 [N, C, 16, 16], p2 [N, C, 32, 32], p1 [N, C, 64, 64]
        return torch.stack([head(maps[level_of(i, 3, 7)]) for i, head in enumerate(self.styles)], dim=1)


class E4EEncoder4Editing(PSPGradualStyleEncoder):
    """e4e's ``Encoder4Editing``: ``styles.0`` on c3 gives one code, repeated on every layer; heads i >= 1 add
    a delta to layer i. The release's progressive stage only masks deltas during training; at inference
    (``ProgressiveStage.Inference``) all are used, as here."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> (w0 [N, D], deltas [N, n_styles, D] with deltas[:, 0] = 0)."""
        maps = self.pyramid(x)
        w0 = self.styles[0](maps[0])  # [N, D]
        deltas = [torch.zeros_like(w0)]
        deltas += [head(maps[level_of(i, 3, 7)]) for i, head in enumerate(self.styles) if i > 0]
        return w0, torch.stack(deltas, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w0, deltas = self.encode(x)
        return w0.unsqueeze(1) + deltas  # [N, n_styles, D]


# ---------------------------------------------------------------------------------------------------------
# CLCAE


class ReleaseCrossAttention(nn.Module):
    """CLCAE's ``CrossAttention``: DETR's post-norm decoder layer without its self-attention.

    t = norm2(q + drop(MHA(q, kv, kv))), out = norm3(t + drop(linear2(drop(relu(linear1(t)))))).
    ``norm1`` exists in the release but is never used (kept for the state dict). Sequence-first tensors:
    query [Lq, N, D], memory [Lk, N, D] -> [Lq, N, D]. With one memory token (the released use) the
    attention is a fixed linear map of it (quirk 1).
    """

    def __init__(self, d_model: int = 512, nhead: int = 4, dim_feedforward: int = 1024, dropout: float = 0.1):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        attended = self.multihead_attn(query, memory, memory, need_weights=False)[0]
        t = self.norm2(query + self.dropout2(attended))
        return self.norm3(t + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(t))))))


class _FeatureConvs(nn.Module):
    """CLCAE's ``GradualFeatureBlock(512, 512, 64, 16)``: two 3x3 stride-2 convs, each with LeakyReLU(0.01):
    [N, C, 64, 64] -> [N, C, 16, 16]."""

    def __init__(self, channels: int, n_convs: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_convs):
            layers += [nn.Conv2d(channels, channels, 3, 2, 1), nn.LeakyReLU(0.01)]
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class _LatentDeconv(nn.Module):
    """CLCAE's ``Decoder`` (used with ``--no_res``): six ConvTranspose(3, stride 2) - BN - ReLU layers taking
    w_off [N, D, 1, 1] to [N, C, 64, 64], the keys/values of the F attention."""

    def __init__(self, in_ch: int, out_ch: int, n: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n):
            cin = in_ch if i == 0 else out_ch
            layers += [
                nn.ConvTranspose2d(cin, out_ch, 3, 2, 1, output_padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(),
            ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class CLCAEReleaseEncoder(IRSE50Trunk):
    """CLCAE's stage-2 encoder (``GradualStyleEncoder(for_image=False)``, docs/papers/clcae.md §2.1-2.4).

    x - x_avg [N, 3, 256, 256] -> (offsets [N, L, D], w_off [N, D], f [N, C, 16, 16] or None) with
    w = latent_avg + w_off and w+ = w + offsets (added by :class:`OfficialEncoder`, as ``AFPSP`` does):

    * ``styles.0`` on c3: w_off; ``styles_others`` (L - 1 heads, 2 / 6 split): the tokens Δw_1.. Δw_{L-1};
    * ``cross_attention.i``: query w_off, key = value = token i (one token), so offsets_i =
      LN(LN(w_off + attn) + FFN) (quirk 2); without W attention (``--no_w_attention``) offsets = tokens;
    * F branch: ``feature_cross_attention`` with the 4096 p1 pixels as queries and w_off as key/value,
      reshaped to [N, C, 64, 64], then ``content_layer`` down to 16x16 (§2.4); ``--no_feature_attention``
      replaces both by ``content_layer`` = conv-BN-PReLU-conv-BN on p1.
    """

    def __init__(self, cfg: OfficialConfig) -> None:
        super().__init__(cfg.input_nc, cfg.widths)
        c, d = self.widths[3], cfg.style_dim
        self.f_branch, self.no_res = cfg.f_branch, cfg.no_res
        self.styles = nn.ModuleList([Map2Style(c, d, 16)])
        if cfg.f_branch == "cnn":
            self.content_layer: nn.Module = nn.Sequential(
                nn.Conv2d(c, c, 3, 2, 1, bias=False),
                nn.BatchNorm2d(c),
                nn.PReLU(c),
                nn.Conv2d(c, c, 3, 2, 1, bias=False),
                nn.BatchNorm2d(c),
            )
        elif cfg.f_branch == "attention":
            if cfg.no_res:
                self.decoder = _LatentDeconv(d, c)
            self.content_layer = _FeatureConvs(c)
            self.feature_cross_attention = ReleaseCrossAttention(d, cfg.heads, cfg.ffn_dim)
        self.styles_others = style_heads(cfg.n_styles - 1, c, d, 2, 6)
        n_blocks = cfg.n_styles if cfg.w_attention else 0
        self.cross_attention = nn.ModuleList(
            ReleaseCrossAttention(d, cfg.heads, cfg.ffn_dim) for _ in range(n_blocks)
        )

    def forward(self, x: torch.Tensor, w_shift: torch.Tensor | None = None):
        """``w_shift`` [N, D] is added to w_off before the tokens and both attentions see it (the release's
        ``edit_offset``, its InterFaceGAN editing path, §4)."""
        maps = self.pyramid(x)  # c3 [N, C, 16, 16], p2 [N, C, 32, 32], p1 [N, C, 64, 64]
        w_off = self.styles[0](maps[0])  # [N, D]
        if w_shift is not None:
            w_off = w_off + w_shift
        tokens = [w_off] + [head(maps[level_of(j, 2, 6)]) for j, head in enumerate(self.styles_others)]
        query = w_off.unsqueeze(0)  # [1, N, D]
        if len(self.cross_attention):
            offsets = [blk(query, t.unsqueeze(0))[0] for blk, t in zip(self.cross_attention, tokens)]
        else:
            offsets = tokens
        f = None
        p1 = maps[2]
        if self.f_branch == "cnn":
            f = self.content_layer(p1)  # [N, C, 16, 16]
        elif self.f_branch == "attention":
            n, c, h, w = p1.shape
            pixels = p1.flatten(2).permute(2, 0, 1)  # [HW, N, C]
            if self.no_res:
                memory = self.decoder(w_off[:, :, None, None]).flatten(2).permute(2, 0, 1)  # [4096, N, C]
            else:
                memory = query  # [1, N, D]
            t = self.feature_cross_attention(pixels, memory)  # [HW, N, C]
            f = self.content_layer(t.permute(1, 2, 0).reshape(n, c, h, w))  # [N, C, 16, 16]
        return torch.stack(offsets, dim=1), w_off, f


# ---------------------------------------------------------------------------------------------------------
# The wrapper used by ganinv


def build_release_net(cfg: OfficialConfig) -> nn.Module:
    """The released architecture ``cfg`` describes (its state dict has the released ``encoder.*`` keys)."""
    if cfg.kind == "psp":
        return PSPGradualStyleEncoder(cfg.n_styles, cfg.style_dim, cfg.input_nc, cfg.widths)
    if cfg.kind == "e4e":
        return E4EEncoder4Editing(cfg.n_styles, cfg.style_dim, cfg.input_nc, cfg.widths)
    return CLCAEReleaseEncoder(cfg)


class OfficialEncoder(nn.Module):
    """A released encoder (``net``) plus the averages its release keeps elsewhere.

    Buffers: ``latent_avg`` [n_styles, D] (NaN until known; the pSp / e4e files store it, CLCAE takes it
    from the StyleGAN file it was trained with) and, for CLCAE, ``image_avg`` [1, 3, 256, 256], the average
    image x_avg subtracted from every input. :meth:`set_averages` fills whichever is missing from a generator.
    ``opts`` is the stored options dict; ``start_from_latent_avg`` whether latent_avg is added (pSp / e4e
    option; always for CLCAE).
    """

    input_size = INPUT_SIZE

    def __init__(self, cfg: OfficialConfig, opts: dict | None = None, start_from_latent_avg: bool = True):
        super().__init__()
        self.config = cfg
        self.kind = cfg.kind
        self.opts = dict(opts or {})
        self.start_from_latent_avg = bool(start_from_latent_avg) or cfg.kind == "clcae"
        self.net = build_release_net(cfg)
        self.register_buffer("latent_avg", torch.full((cfg.n_styles, cfg.style_dim), float("nan")))
        if cfg.kind == "clcae":
            self.register_buffer("image_avg", torch.full((1, 3, INPUT_SIZE, INPUT_SIZE), float("nan")))
        else:
            self.image_avg = None

    @property
    def n_latent(self) -> int:
        return self.config.n_styles

    @property
    def style_dim(self) -> int:
        return self.config.style_dim

    @property
    def has_f(self) -> bool:
        return self.kind == "clcae" and self.config.f_branch is not None

    def set_latent_avg(self, latent_avg: torch.Tensor) -> None:
        """Set ``latent_avg`` from [D] or [n_styles, D] (pSp / e4e store the row repeated n_styles times)."""
        t = torch.as_tensor(latent_avg).detach().float().to(self.latent_avg.device)
        d, n = self.style_dim, self.n_latent
        if t.shape == (d,) or t.shape == (1, d):
            t = t.reshape(1, d).expand(n, d)
        if tuple(t.shape) != (n, d):
            raise ValueError(f"latent_avg has shape {list(t.shape)}; expected [{d}] or [{n}, {d}]")
        self.latent_avg.copy_(t)

    def set_image_avg(self, image: torch.Tensor) -> None:
        """CLCAE's x_avg from [3, S, S] or [1, 3, S, S] in [-1, 1] (resized to 256 when S differs)."""
        if self.image_avg is None:
            raise ValueError(f"a {self.kind} encoder takes no average image")
        x = image.detach().float().reshape(1, *image.shape[-3:]).to(self.image_avg.device)
        self.image_avg.copy_(self.prepare(x))

    def averages_missing(self) -> list[str]:
        """Names of the averages still unknown (NaN): "latent_avg", "image_avg"."""
        missing = ["latent_avg"] if self.start_from_latent_avg and torch.isnan(self.latent_avg).any() else []
        if self.image_avg is not None and torch.isnan(self.image_avg).any():
            missing.append("image_avg")
        return missing

    @torch.no_grad()
    def set_averages(self, G: nn.Module) -> None:
        """Fill what is missing from ``G``: latent_avg from ``G.get_w_avg()`` (G's stored w_avg, else the mean
        of 4096 mapped z, with a warning since the release uses the StyleGAN file's ``latent_avg``) and
        CLCAE's x_avg as G(latent_avg) with G's fixed noise, clipped to [-1, 1] and resized to 256 by
        :meth:`prepare` (the release reads it from an image file presumably made this way [inferred])."""
        missing = self.averages_missing()
        if "latent_avg" in missing:
            if torch.isnan(G.w_avg).any():
                warnings.warn(
                    f"the {self.kind} checkpoint carries no latent_avg and neither does the generator; using "
                    "the mean of 4096 mapped z instead (pass latent_avg=<the StyleGAN .pt it was trained "
                    "with> to load_encoder for the release's value)",
                    stacklevel=3,
                )
            self.set_latent_avg(G.get_w_avg().to(self.latent_avg.device))
        if "image_avg" in missing:
            w = self.latent_avg[:1].to(G.w_avg.device)  # [1, D]
            img = G.synthesis(w, noise_mode="const")  # [1, 3, G.size, G.size]
            self.image_avg.copy_(self.prepare(img.clamp(-1, 1)).to(self.image_avg.device))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] in [-1, 1] -> [N, 3, 256, 256] by antialiased bilinear resizing, which follows PIL's
        bilinear resize in pSp's ``transforms.Resize((256, 256))`` (on floats here, not 8-bit pixels)."""
        if images.shape[-1] == INPUT_SIZE and images.shape[-2] == INPUT_SIZE:
            return images
        return F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True)

    def encode(self, x: torch.Tensor, w_shift: torch.Tensor | None = None) -> OfficialCodes:
        """x [N, input_nc, 256, 256] in [-1, 1] -> :class:`OfficialCodes` with latent_avg added.
        ``w_shift`` (CLCAE only): the in-encoder edit of the release's InterFaceGAN path."""
        if missing := self.averages_missing():
            raise RuntimeError(
                f"{self.kind} encoder: {', '.join(missing)} unknown; call set_averages(G) first"
            )
        avg = self.latent_avg if self.start_from_latent_avg else torch.zeros_like(self.latent_avg)  # [L, D]
        if self.kind == "clcae":
            offsets, w_off, f = self.net(x - self.image_avg, w_shift=w_shift)
            w = w_off + avg[0]  # [N, D]
            return OfficialCodes(w, w.unsqueeze(1) + offsets, f)
        if w_shift is not None:
            raise ValueError("w_shift is a CLCAE option")
        if self.kind == "e4e":
            w0, deltas = self.net.encode(x)
            return OfficialCodes(w0 + avg[0], w0.unsqueeze(1) + deltas + avg, None)
        return OfficialCodes(None, self.net(x) + avg, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, input_nc, 256, 256] -> w+ [N, n_styles, D]."""
        return self.encode(x).w_plus

    def render(self, G: nn.Module, codes: OfficialCodes, mode: str = "w_plus", noise_mode: str = "const"):
        """G(w) (``mode="w"``), G(w+) or G(w+, f) with f after the 16x16 ToRGB, as released: [N, 3, G.size,
        G.size]."""
        if mode == "w":
            if codes.w is None:
                raise ValueError(f"a {self.kind} encoder has no single w code")
            return G.synthesis(codes.w, noise_mode=noise_mode)
        if mode == "f":
            if codes.f is None:
                raise ValueError("this CLCAE checkpoint has no F branch (trained with --not_for_feature)")
            return G.synthesis(
                codes.w_plus, noise_mode=noise_mode, f=codes.f, f_res=F_RES, f_before_rgb=False
            )
        return G.synthesis(codes.w_plus, noise_mode=noise_mode)

    def check_generator(self, G: nn.Module) -> None:
        """ValueError unless G takes this encoder's codes (n_latent, style_dim; 16x16 channels for f)."""
        if (G.n_latent, G.style_dim) != (self.n_latent, self.style_dim):
            raise ValueError(
                f"the {self.kind} checkpoint was trained for a {self.config.output_size}px generator "
                f"(n_latent, style_dim) = {(self.n_latent, self.style_dim)}, but the generator has "
                f"{(G.n_latent, G.style_dim)}; use the generator of the same file (load_generator(path))"
            )
        if self.has_f and G.channels.get(F_RES) != self.config.widths[3]:
            raise ValueError(
                f"the CLCAE f has {self.config.widths[3]} channels, G's 16x16 feature {G.channels.get(F_RES)}"
            )


def n_styles_for(size: int) -> int:
    """2 log2(size) - 2: the number of style codes of a ``size`` px StyleGAN2 (18 at 1024)."""
    return 2 * int(math.log2(size)) - 2
