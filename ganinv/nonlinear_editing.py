"""Non-linear latent editing: small attribute classifiers on W and edits that follow their gradient field.

InterFaceGAN (Shen et al., CVPR 2020, Sec. 2.2) assumes one hyperplane per attribute. When an attribute is
not linearly separable in W (in the bundled ``synthfaces64``: smiling, mouth open and eyes closed, held-out
boundary accuracy 0.61, 0.63 and 0.78), the normal of the best hyperplane points nowhere in particular and
moving along it leaves most faces unchanged. The idea followed here is the *surrogate gradient field* of
Li, Jin and Zhu ("Surrogate Gradient Field for Latent Space Manipulation", CVPR 2021): train a small
non-linear network that predicts the attributes from the latent code, then move the code along the network's
input gradient, one small step at a time, instead of along one fixed vector. To keep the other attributes,
each step is the minimum-norm move that changes the target attribute's output and, to first order, none of
the others: the target gradient with the other attributes' gradients projected out. That is the
non-linear counterpart of InterFaceGAN's conditional direction (Sec. 2.3), recomputed at every step.

What is ours (documented choices): one MLP per binary attribute on w (:class:`ClassifierConfig`), trained on
generated samples labelled by the SFN read-out (``ganinv.editing.sample_labelled``; samples within
``ambiguous`` of P = 0.5 dropped, as for the linear boundaries); the walk of :func:`nonlinear_shift` runs in
the data's own metric (whitened w, so one step is one σ of the samples and the steepest ascent is C ∇_w,
which keeps the walk where the samples are); ``strength`` is the signed path length in σ (``std`` is 1, so
``strength = k * direction.std`` works as for the linear edits, and 0 leaves the code unchanged); the walk
covers the whole budget unless a ``margin`` on the target logit is set. For a w⁺ code (every row, or the
rows [start, end)) the path is computed from the mean of those rows and the same shift is added to each of
them, exactly as a linear edit adds one vector to each row; the F rule of CLCAE §4 then applies unchanged
(``ganinv.editing.edit_f`` calls :func:`ganinv.editing.edit`, which dispatches here).

A :class:`NonlinearDirection` is accepted wherever a ``Direction`` is (``edit``, ``edit_f``, ``apply_edit``,
the explorer's edits, ``ganinv inpaint --edit``). ``ganinv train nonlinear`` fits and writes
``data/pretrained/<generator>/nonlinear.pt`` (:func:`save_nonlinear`, :func:`load_nonlinear`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, resolve_checkpoint, save_checkpoint
from .configs import config_from_dict

KIND = "nonlinear"  # checkpoint kind; a bundled name resolves to data/pretrained/<name>/nonlinear.pt


@dataclass
class ClassifierConfig:
    """The attribute classifiers and how they are fitted.

    ``hidden`` (128) and ``depth`` (2): width and number of hidden layers of each attribute's MLP (SiLU, so
    that the gradient field is smooth); ``epochs`` (40), ``batch_size`` (256), ``lr`` (2e-3, Adam, cosine
    decay) and ``weight_decay`` (1e-4); ``ambiguous`` (0.2): samples with |P − 0.5| below it are dropped;
    ``val_frac`` (0.2): held out for the reported accuracy; ``seed`` (0): split, initialisation, batches.
    """

    hidden: int = 128
    depth: int = 2
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    ambiguous: float = 0.2
    val_frac: float = 0.2
    seed: int = 0


@dataclass
class StepConfig:
    """The step rule of :func:`nonlinear_shift`.

    ``step`` (0.25): length of one step in σ (the data metric, see :func:`nonlinear_shift`); ``margin``
    (None): when set, a sample stops once its target logit is this far on the requested side; None walks
    the whole budget, like a linear edit (the MLPs are over-confident off the samples: with a margin of 3
    to 10 most walks stopped after 2–4 w units, before the SFN read-out flipped, see notebook 04 §7);
    ``conditional`` (True): project out the other attributes' gradients (SGF's pseudo-inverse step);
    ``pull`` (0.0): weight of a pull towards the start code, added to the step before normalising.
    """

    step: float = 0.25
    margin: float | None = None
    conditional: bool = True
    pull: float = 0.0


def _mlp(dim: int, hidden: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(dim if i == 0 else hidden, hidden), nn.SiLU()]
    layers.append(nn.Linear(hidden if depth else dim, 1))
    return nn.Sequential(*layers)


class AttributeClassifiers(nn.Module):
    """One MLP per attribute on standardised w: ``forward(w [N, D]) -> logits [N, A]`` (``names`` order).

    Inputs are centred by ``mean`` [D] and divided by one global ``scale`` (the RMS spread of sampled w);
    ``sqrt_cov`` [D, D] is the symmetric square root of the sampled w's covariance (the edits' metric).
    """

    def __init__(self, style_dim: int, names: Sequence[str], hidden: int = 128, depth: int = 2) -> None:
        super().__init__()
        if not names:
            raise ValueError("AttributeClassifiers needs at least one attribute name")
        self.style_dim, self.names, self.hidden, self.depth = int(style_dim), tuple(names), hidden, depth
        self.nets = nn.ModuleDict({k: _mlp(style_dim, hidden, depth) for k in self.names})
        self.register_buffer("mean", torch.zeros(style_dim))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("sqrt_cov", torch.eye(style_dim))  # C^(1/2) of sampled w: the data metric

    @property
    def config(self) -> dict:
        return {
            "style_dim": self.style_dim,
            "names": list(self.names),
            "hidden": self.hidden,
            "depth": self.depth,
        }

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if w.ndim != 2 or w.shape[1] != self.style_dim:
            raise ValueError(f"w: expected shape [N, {self.style_dim}], got {list(w.shape)}")
        x = (w - self.mean) / self.scale  # [N, D]
        return torch.cat([self.nets[k](x) for k in self.names], 1)  # [N, A]

    def logit(self, w: torch.Tensor, name: str) -> torch.Tensor:
        """The logit of one attribute: [N]."""
        return self.nets[name]((w - self.mean) / self.scale)[:, 0]


def fit_classifiers(
    w: torch.Tensor,
    probs: Mapping[str, torch.Tensor],
    cfg: ClassifierConfig | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[AttributeClassifiers, dict[str, float]]:
    """Fit one MLP per attribute of ``probs`` ({name: P(1) [N]}) on sampled ``w`` [N, D] with the binary
    cross-entropy on the confident samples (label P > 0.5); returns (classifiers in eval mode, held-out
    accuracy per attribute). ValueError when an attribute has fewer than 5 confident samples of a class."""
    cfg = cfg or ClassifierConfig()
    w = w.detach().float().cpu()
    if w.ndim != 2:
        raise ValueError(f"w: expected shape [N, D], got {list(w.shape)}")
    torch.manual_seed(cfg.seed)
    clf = AttributeClassifiers(w.shape[1], list(probs), cfg.hidden, cfg.depth)
    clf.mean.copy_(w.mean(0))
    clf.scale.copy_((w - clf.mean).pow(2).mean().sqrt().clamp_min(1e-12))
    var, vecs = torch.linalg.eigh(torch.cov(w.t()).double())  # [D], [D, D]
    clf.sqrt_cov.copy_(((vecs * var.clamp_min(0).sqrt()) @ vecs.t()).float())
    perm = torch.randperm(len(w), generator=torch.Generator().manual_seed(cfg.seed))
    accuracy = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(probs) * cfg.epochs, desc="classifiers", unit="epoch")
    for name, p in probs.items():
        p = p.detach().float().reshape(-1).cpu()
        if p.shape[0] != w.shape[0]:
            raise ValueError(f"attribute {name!r}: {p.shape[0]} probabilities for {w.shape[0]} codes")
        p = p[perm]
        keep = (p - 0.5).abs() >= cfg.ambiguous
        x, y = w[perm][keep], (p[keep] > 0.5).float()
        n_val = int(round(cfg.val_frac * len(y)))
        x_va, x_tr, y_va, y_tr = x[:n_val], x[n_val:], y[:n_val], y[n_val:]
        if min(int(y_tr.sum()), int((1 - y_tr).sum())) < 5:
            raise ValueError(f"attribute {name!r}: fewer than 5 confident samples of a class; sample more w")
        net = clf.nets[name]
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * max(1, -(-len(y_tr) // cfg.batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        g = torch.Generator().manual_seed(cfg.seed + 1)
        xs = (x_tr - clf.mean) / clf.scale  # [n, D]
        net.train()
        for _ in range(cfg.epochs):
            order = torch.randperm(len(y_tr), generator=g)
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                loss = F.binary_cross_entropy_with_logits(net(xs[idx])[:, 0], y_tr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(attribute=name)
        net.eval()
        with torch.no_grad():
            acc = (
                ((clf.logit(x_va, name) > 0) == (y_va > 0.5)).float().mean()
                if n_val
                else torch.tensor(float("nan"))
            )
        accuracy[name] = float(acc)
        if log is not None:
            log(f"{name:>12}  non-linear    held-out accuracy {accuracy[name]:.3f}")
    if bar is not None:
        bar.close()
    return clf.eval().requires_grad_(False), accuracy


def _grads(clf: AttributeClassifiers, w: torch.Tensor) -> torch.Tensor:
    """Input gradients of every attribute's logit at ``w`` [N, D]: [N, A, D]."""
    with torch.enable_grad():
        x = w.detach().clone().requires_grad_(True)
        logits = clf(x)  # [N, A]
        rows = [torch.autograd.grad(logits[:, i].sum(), x, retain_graph=i + 1 < logits.shape[1])[0]
                for i in range(logits.shape[1])]  # fmt: skip
    return torch.stack(rows, 1)


def nonlinear_shift(
    clf: AttributeClassifiers,
    w: torch.Tensor,
    name: str,
    strength: float | torch.Tensor,
    cfg: StepConfig | None = None,
    keep: Sequence[str] | None = None,
) -> torch.Tensor:
    """Walk ``w`` [N, D] along the gradient field of attribute ``name``; returns the shift ŵ − w [N, D].

    The walk runs in whitened coordinates u = C^(−1/2) (w − mean), C the covariance of sampled w, so that a
    unit step is one σ of the data and the steepest ascent C ∇_w favours the directions in which sampled w
    vary (a plain gradient step in w leaves the samples' region within a few units, where the MLPs are
    wrong). ``strength`` (a number or one per sample [N], in σ): its sign says towards (+) or away from (−)
    the attribute, its size is the path length. Each step of ``cfg.step`` σ follows the unit target
    gradient in u with the gradients of the attributes ``keep`` (default: every other attribute of ``clf``)
    projected out when ``cfg.conditional`` (per sample, by QR), plus ``cfg.pull`` times the way back to the
    start; the last step is shortened to land on the budget; ``cfg.margin`` optionally stops a sample early.
    """
    cfg = cfg or StepConfig()
    if w.ndim != 2 or w.shape[1] != clf.style_dim:
        raise ValueError(f"w: expected shape [N, {clf.style_dim}], got {list(w.shape)}")
    if name not in clf.names:
        raise ValueError(f"no classifier for {name!r}; these classifiers know {list(clf.names)}")
    if not cfg.step > 0:
        raise ValueError(f"step must be positive, got {cfg.step}")
    s = torch.as_tensor(strength, dtype=w.dtype, device=w.device).reshape(-1).expand(w.shape[0])  # [N]
    sign, budget = torch.sign(s), s.abs()  # [N], [N]
    keep = [k for k in clf.names if k != name] if keep is None else list(keep)
    i_t, i_k = clf.names.index(name), [clf.names.index(k) for k in keep]
    root = clf.sqrt_cov.to(w)  # [D, D], symmetric
    start = w.detach()
    cur, left, walked = start.clone(), budget.clone(), torch.zeros_like(start)  # [N, D], [N], [N, D] in u
    n_steps = int(torch.ceil(budget.max() / cfg.step)) if budget.numel() else 0
    for _ in range(n_steps):
        g = _grads(clf, cur) @ root  # [N, A, D]: gradients in u
        with torch.no_grad():
            active = (left > 1e-9) & (sign != 0)
            if cfg.margin is not None:
                active &= sign * clf(cur)[:, i_t] < cfg.margin
            if not bool(active.any()):
                break
            d = g[:, i_t] * sign[:, None]  # [N, D]
            if cfg.conditional and i_k:
                q, _ = torch.linalg.qr(g[:, i_k].transpose(1, 2))  # [N, D, K]
                d = d - (q @ (q.transpose(1, 2) @ d[:, :, None]))[:, :, 0]
            d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
            if cfg.pull:
                d = d - cfg.pull * walked / cfg.step
                d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
            length = torch.minimum(left, torch.full_like(left, cfg.step)) * active  # [N]
            walked = walked + length[:, None] * d
            cur = start + walked @ root
            left = left - length
    return (cur - start).detach()


@dataclass
class NonlinearDirection:
    """The non-linear edit of one attribute: usable wherever a ``ganinv.editing.Direction`` is.

    ``classifiers``: the fitted :class:`AttributeClassifiers`; ``name``: the attribute; ``std``: 1.0, the
    walk is measured in σ of the data (``strength = k * std`` walks k σ, as for linear edits);
    ``accuracy``: the classifier's held-out accuracy; ``layers``: default w⁺ rows [start, end) (None: all);
    ``step``: the :class:`StepConfig`.
    """

    classifiers: AttributeClassifiers
    name: str
    std: float = 1.0
    accuracy: float | None = None
    layers: tuple[int, int] | None = None
    step: StepConfig = dataclasses.field(default_factory=StepConfig)
    kind: str = "nonlinear"

    def with_step(self, **changes) -> NonlinearDirection:
        """A copy with some :class:`StepConfig` fields changed (e.g. ``conditional=False``)."""
        return dataclasses.replace(self, step=dataclasses.replace(self.step, **changes))

    def shift(self, w: torch.Tensor, strength: float | torch.Tensor) -> torch.Tensor:
        """:func:`nonlinear_shift` of ``w`` [N, D] with this direction's classifiers, σ and step rule."""
        clf = self.classifiers.to(w.device)
        return nonlinear_shift(clf, w.float(), self.name, strength, self.step).to(w.dtype)


def edit_nonlinear(
    G: nn.Module,
    latent: torch.Tensor,
    direction: NonlinearDirection,
    strength: float | torch.Tensor,
    layers: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The non-linear counterpart of ``ganinv.editing.edit`` (same shapes and ``layers`` rule): w [N, D] is
    walked directly; for w⁺ [N, L, D] the walk starts at the mean of rows [start, end) and its shift is
    added to each of those rows."""
    if latent.ndim not in (2, 3) or latent.shape[-1] != G.style_dim:
        raise ValueError(
            f"latent: expected w [N, {G.style_dim}] or w+ [N, L, {G.style_dim}], got {list(latent.shape)}"
        )
    if direction.classifiers.style_dim != G.style_dim:
        raise ValueError(f"classifiers take w of {direction.classifiers.style_dim} dims, G has {G.style_dim}")
    layers = layers if layers is not None else direction.layers
    start, end = (0, G.n_latent) if layers is None else layers
    if not 0 <= start < end <= G.n_latent:
        raise ValueError(f"layers must satisfy 0 <= start < end <= {G.n_latent}, got {layers}")
    if latent.ndim == 2 and (start, end) == (0, G.n_latent):
        return latent + direction.shift(latent, strength)
    w_plus = G.broadcast(latent)  # [N, L, D]
    delta = direction.shift(w_plus[:, start:end].mean(1), strength)  # [N, D]
    mask = torch.zeros(G.n_latent, 1, dtype=latent.dtype, device=latent.device)
    mask[start:end] = 1.0
    return w_plus + mask * delta.unsqueeze(1)


class NonlinearDirections(dict):
    """``name -> NonlinearDirection`` sharing one :class:`AttributeClassifiers`, plus the generator."""

    def __init__(self, items=(), generator: str | None = None, generator_config: dict | None = None) -> None:
        super().__init__(items)
        self.generator, self.generator_config = generator, generator_config


def fit_nonlinear(
    w: torch.Tensor,
    probs: Mapping[str, torch.Tensor],
    cfg: ClassifierConfig | None = None,
    step: StepConfig | None = None,
    generator: str | None = None,
    generator_config: dict | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> NonlinearDirections:
    """Classifiers (:func:`fit_classifiers`) and one :class:`NonlinearDirection` per attribute of
    ``probs`` ({name: P(1) [N]} of the sampled ``w`` [N, D])."""
    clf, acc = fit_classifiers(w, probs, cfg, progress, log)
    step = step or StepConfig()
    out = NonlinearDirections(generator=generator, generator_config=generator_config)
    for k in clf.names:
        out[k] = NonlinearDirection(clf, k, 1.0, acc[k], step=step)
    return out


def nonlinear_directions(
    G: nn.Module,
    reader=None,
    n: int = 12000,
    cfg: ClassifierConfig | None = None,
    step: StepConfig | None = None,
    generator: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> NonlinearDirections:
    """End to end (``ganinv train nonlinear``): sample ``n`` w of seed ``cfg.seed``, render and label them
    with ``reader`` (default: the SFN's binary attributes, ``ganinv.editing.sfn_reader``), fit
    :func:`fit_nonlinear`."""
    from .editing import sample_labelled

    cfg = cfg or ClassifierConfig()
    w, probs = sample_labelled(G, n, reader, cfg.seed)  # [n, D], {name: [n]}
    return fit_nonlinear(w, probs, cfg, step, generator, G.config, progress, log)


def save_nonlinear(path: str | os.PathLike, directions: NonlinearDirections, half: bool = True) -> None:
    """Write non-linear directions (classifier weights in fp16 unless ``half=False``, σ, accuracy, step
    rule, generator) as a ganinv checkpoint of kind "nonlinear" (atomically)."""
    if not directions or not all(isinstance(d, NonlinearDirection) for d in directions.values()):
        raise ValueError("save_nonlinear needs a non-empty mapping name -> NonlinearDirection")
    clf = next(iter(directions.values())).classifiers
    if any(d.classifiers is not clf for d in directions.values()):
        raise ValueError("save_nonlinear: every direction must share one AttributeClassifiers")
    meta = {
        k: {"std": float(d.std), "accuracy": d.accuracy, "step": dataclasses.asdict(d.step),
            "layers": None if d.layers is None else list(d.layers)}
        for k, d in directions.items()
    }  # fmt: skip
    save_checkpoint(path, KIND, clf.config, clf.state_dict(), half=half, meta=meta,
                    generator=directions.generator, generator_config=directions.generator_config)  # fmt: skip


def load_nonlinear(path_or_name: str | os.PathLike, G: nn.Module | None = None) -> NonlinearDirections:
    """Load :func:`save_nonlinear` output (a path, a folder with ``nonlinear.pt`` or a bundled name). With
    ``G``, check that the file was made for a generator of the same config; :class:`CheckpointError` on that
    or on any problem with the file."""
    path = resolve_checkpoint(path_or_name, KIND)
    ckpt = load_checkpoint(path, KIND)
    cfg, sd, meta = ckpt["config"], ckpt["state_dict"], ckpt.get("meta")
    names = cfg.get("names") if isinstance(cfg, dict) else None
    if not isinstance(meta, dict) or not isinstance(names, list) or not names or set(meta) != set(names):
        raise CheckpointError(
            f"{path}: non-linear directions without matching names and metadata; re-fit them"
        )
    try:
        clf = AttributeClassifiers(int(cfg["style_dim"]), names, int(cfg["hidden"]), int(cfg["depth"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad classifier config {cfg!r} ({e}); re-fit them") from None
    own = clf.state_dict()
    if set(sd) != set(own) or any(tuple(sd[k].shape) != tuple(v.shape) for k, v in own.items()):
        raise CheckpointError(f"{path}: classifier weights do not match the stored config; re-fit them")
    clf.load_state_dict({k: v.float() for k, v in sd.items()})
    if not all(bool(torch.isfinite(v).all()) for v in clf.state_dict().values()):
        raise CheckpointError(f"{path}: classifier weights hold NaN or infinity")
    stored = ckpt.get("generator_config")
    if G is not None:
        if clf.style_dim != G.style_dim:
            raise CheckpointError(
                f"{path}: classifiers take w of {clf.style_dim} dims, the generator {G.style_dim}"
            )
        if isinstance(stored, dict) and stored != G.config:
            raise CheckpointError(f"{path}: non-linear directions belong to another generator; re-fit them")
    clf = clf.eval().requires_grad_(False).to(next(G.parameters()).device if G is not None else "cpu")
    out = NonlinearDirections(generator=ckpt.get("generator"), generator_config=stored)
    for k in names:
        m = meta[k]
        try:
            step = config_from_dict(StepConfig, m.get("step") or {})
            layers = tuple(m["layers"]) if m.get("layers") is not None else None
            std = float(m["std"])
            if not std > 0:
                raise ValueError(f"std {std}")
            out[k] = NonlinearDirection(clf, k, std, m.get("accuracy"), layers, step)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{path}: bad metadata for {k!r} ({e}); re-fit them") from None
    return out
