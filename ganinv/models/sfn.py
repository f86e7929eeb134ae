"""SFN, the SynthFaces feature network: a small CNN that reads the SynthFaces factors off an image.

In this project's embedded world SFN stands in for the networks that papers on real faces borrow:

* **ID-SFN** (ArcFace's role): cosine similarity of :meth:`SFN.embed`, an L2-normalised embedding trained
  to be invariant to expression, pose, lighting, background and glasses and sensitive to identity factors
  (see ``ganinv.data.identity.IDENTITY_FACTORS``);
* **FID-SFN** (Inception's role): statistics of :meth:`SFN.pooled`, the penultimate features;
* **LPIPS-SFN** (AlexNet's role): distances between the per-stage maps of :meth:`SFN.features`;
* attribute labels for InterFaceGAN and the read-out that scores edits: :meth:`SFN.attributes`.

Architecture: ``len(widths)`` residual stages, each ``conv3x3/2 - BN - ReLU - conv3x3 - BN (+ skip) - ReLU``,
halving the resolution (64 -> 32 -> 16 -> 8 -> 4 with the default widths); the last map is average-pooled
to ``pool x pool`` (keeping coarse layout, which yaw needs), flattened, and a linear layer + ReLU gives the
``hidden``-dim pooled features. Linear heads on them give one logit per binary attribute, one value per
continuous factor (predicted in the normalised units ``(v - low) / (high - low)``), one logit vector per
categorical factor, and a two-layer projection gives the identity embedding.

Inputs are images ``[N, 3, H, W]`` in [-1, 1]. Any other ``H x W`` is resized to ``size x size`` with
antialiased bilinear interpolation (``F.interpolate(..., antialias=True)``) before the first layer.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import build_checked, load_checkpoint, load_state_strict, save_checkpoint, stored_config
from ..configs import FromDict
from ..data import synthfaces as sf


def _default_continuous() -> tuple[tuple[str, float, float], ...]:
    return tuple((f.name, float(f.low), float(f.high)) for f in sf.FACTORS if f.kind == "continuous")


def _default_categorical() -> tuple[tuple[str, int], ...]:
    return tuple((f.name, f.num_classes) for f in sf.FACTORS if f.kind == "categorical")


@dataclass
class SFNConfig(FromDict):
    """Constructor arguments of :class:`SFN` (stored in checkpoints, so a model knows its own heads)."""

    size: int = 64  # working resolution; other input sizes are resized to it
    widths: tuple[int, ...] = (32, 64, 128, 192)  # channels of each stride-2 stage
    pool: int = 4  # the last map is average-pooled to pool x pool before the fully connected layer
    hidden: int = 256  # dimension of the pooled (penultimate) features, used for FID-SFN
    embed_dim: int = 128  # identity embedding dimension
    binary: tuple[str, ...] = sf.BINARY_ATTRIBUTES  # one logit each
    continuous: tuple[tuple[str, float, float], ...] = field(default_factory=_default_continuous)
    categorical: tuple[tuple[str, int], ...] = field(default_factory=_default_categorical)

    def __post_init__(self) -> None:
        # lists (e.g. from a checkpoint) become tuples; check the values once here
        self.widths = tuple(int(w) for w in self.widths)
        self.binary = tuple(str(n) for n in self.binary)
        self.continuous = tuple((str(n), float(lo), float(hi)) for n, lo, hi in self.continuous)
        self.categorical = tuple((str(n), int(c)) for n, c in self.categorical)
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"SFNConfig.widths must be positive channel counts, got {self.widths}")
        if self.size < 2 ** len(self.widths):
            raise ValueError(f"SFNConfig.size {self.size} is too small for {len(self.widths)} stages")
        for name, v in (("pool", self.pool), ("hidden", self.hidden), ("embed_dim", self.embed_dim)):
            if int(v) < 1:
                raise ValueError(f"SFNConfig.{name} must be at least 1, got {v}")
        if any(c < 2 for _, c in self.categorical):
            raise ValueError(f"SFNConfig.categorical needs at least 2 classes each, got {self.categorical}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _Stage(nn.Module):
    """conv3x3 stride 2 - BN - ReLU - conv3x3 - BN, plus a strided 1x1 projection skip, then ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


class SFN(nn.Module):
    """The SynthFaces feature network (see the module docstring)."""

    def __init__(self, config: SFNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = config if config is not None else SFNConfig()
        chans = (3, *cfg.widths)
        self.stages = nn.ModuleList(_Stage(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.fc = nn.Linear(cfg.widths[-1] * cfg.pool**2, cfg.hidden)
        self.head_binary = nn.Linear(cfg.hidden, len(cfg.binary))
        self.head_continuous = nn.Linear(cfg.hidden, len(cfg.continuous))
        self.head_categorical = nn.Linear(cfg.hidden, sum(c for _, c in cfg.categorical))
        self.head_embed = nn.Sequential(
            nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.embed_dim)
        )

    @property
    def config(self) -> dict:
        return self.cfg.to_dict()

    # -- trunk ----------------------------------------------------------------------------------------

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Validate ``x`` ([N, 3, H, W] float in [-1, 1]) and resize it to ``size`` if needed."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"SFN expects a torch.Tensor of images [N, 3, H, W], got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"SFN expects images [N, 3, H, W] in [-1, 1], got shape {list(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"SFN expects floating-point images in [-1, 1], got dtype {x.dtype}")
        if x.shape[0] == 0 or min(x.shape[2:]) < 1:
            raise ValueError(f"SFN got an empty batch of shape {list(x.shape)}")
        x = x.to(self.fc.weight.dtype)
        s = self.cfg.size
        if x.shape[2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return x

    def _trunk(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = []
        h = self.prepare(x)
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        pooled = F.relu(self.fc(F.adaptive_avg_pool2d(h, self.cfg.pool).flatten(1)))
        return feats, pooled

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage, ``[N, widths[i], size / 2^(i+1), size / 2^(i+1)]`` (LPIPS-SFN)."""
        return self._trunk(x)[0]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[N, hidden]`` (non-negative; FID-SFN statistics)."""
        return self._trunk(x)[1]

    # -- heads ----------------------------------------------------------------------------------------

    def _heads(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        out: dict[str, torch.Tensor] = {}
        b = self.head_binary(pooled)
        for j, name in enumerate(cfg.binary):
            out[name] = b[:, j]
        c = self.head_continuous(pooled)
        for j, (name, _, _) in enumerate(cfg.continuous):
            out[name] = c[:, j]
        k = self.head_categorical(pooled)
        for (name, _), part in zip(cfg.categorical, k.split([n for _, n in cfg.categorical], dim=1)):
            out[name] = part
        out["embedding"] = self.head_embed(pooled)
        return out

    def logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs: ``{binary name: logit [N], continuous name: normalised value [N] (0..1 spans
        the factor's range, unclamped), categorical name: logits [N, C], "embedding": [N, embed_dim]
        (not normalised)}``."""
        return self._heads(self._trunk(x)[1])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Same as :meth:`logits`."""
        return self.logits(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised identity embedding ``[N, embed_dim]``; ID-SFN is the cosine of two of them."""
        return F.normalize(self.head_embed(self.pooled(x)), dim=1)

    def features_and_embed(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``(features(x), embed(x))`` from one pass through the trunk (LPIPS-SFN and ID-SFN of one image
        batch at the cost of one): the same values as the two calls."""
        feats, pooled = self._trunk(x)
        return feats, F.normalize(self.head_embed(pooled), dim=1)

    def attributes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: [N]}``: P(1) for binary attributes, values clamped to ``[low, high]`` for continuous
        factors, class ids (int64) for categorical ones."""
        return self.read_out(self.logits(x))

    def read_out(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Turn :meth:`logits` output into :meth:`attributes` output (no second forward pass)."""
        cfg = self.cfg
        out = {name: torch.sigmoid(logits[name]) for name in cfg.binary}
        for name, lo, hi in cfg.continuous:
            out[name] = lo + (hi - lo) * logits[name].clamp(0, 1)
        for name, _ in cfg.categorical:
            out[name] = logits[name].argmax(dim=1)
        return out


# ---------------------------------------------------------------------------------------------------------
# Saving and loading


def save_sfn(path: str | os.PathLike, model: SFN, half: bool = True, **extra) -> None:
    """Write ``model`` as a ganinv checkpoint of kind ``"sfn"`` (fp16 weights unless ``half=False``)."""
    save_checkpoint(path, "sfn", model.config, model.state_dict(), half=half, **extra)


def load_sfn(path_or_name: str | os.PathLike = "sfn", device: str | torch.device = "cpu") -> SFN:
    """Load an SFN in eval mode with gradients off: a path, a folder holding ``sfn.pt``, or a bundled name
    (``"sfn"`` is ``data/pretrained/sfn/sfn.pt``). Raises :class:`CheckpointError` on any problem."""
    ckpt = load_checkpoint(path_or_name, "sfn")
    cfg = stored_config(ckpt, SFNConfig.from_dict, path_or_name, "SFN")
    model = build_checked(lambda: SFN(cfg), ckpt["state_dict"], path_or_name, "SFN", ckpt["config"])
    load_state_strict(model, ckpt["state_dict"], path_or_name)
    model.eval().requires_grad_(False)
    return model.to(device)
