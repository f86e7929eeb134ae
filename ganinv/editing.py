"""Latent editing: InterFaceGAN boundaries, GANSpace components, and edits applied in W, W⁺ and F.

- **InterFaceGAN** (Shen et al., "Interpreting the Latent Space of GANs for Semantic Face Editing", CVPR
  2020). Sec. 2.2: a binary attribute is separated in W by a hyperplane; its unit normal n is the edit
  direction, w' = w + α n. Sec. 2.3: *conditional* manipulation projects n onto the orthogonal
  complement of other attributes' normals, so that editing one attribute does not move the others
  (:func:`orthogonalize`).
- **GANSpace** (Härkönen et al., "GANSpace: Discovering Interpretable GAN Controls", NeurIPS 2020). Sec. 2.2:
  PCA of sampled w; Sec. 3: an edit w' = w + α v_k applied only to the layers [start, end) of w⁺.
- **F-space edits** (CLCAE §4, the rule of FS / HFGI): ŵ⁺ = edited w⁺, f̂ = f + G_f(ŵ⁺) − G_f(w⁺), image
  G(ŵ⁺, f̂), where G_f is the generator's own feature at the F resolution (:func:`edit_f`).

Every inversion method's output (w, w⁺, or w⁺ with F features, also the multi-resolution F of the inpainting
stage 2) is edited by one call, :func:`apply_edit` (docs/papers/diverse_inpainting.md §7: edits act on the
inverted codes).

Deviations, all documented choices: the boundary is an L2-regularised logistic regression solved by Newton's
method (InterFaceGAN trains a linear SVM on the 2% most and least confident samples; we drop the samples
whose attribute probability lies within ``ambiguous`` of 0.5 instead). GANSpace as used by e4e/CLCAE *sets*
the PCA coordinate to the strength; here every edit *adds* ``strength * vector`` (strength in w units; use
``strength = k * direction.std`` for k standard deviations). CLCAE's InterFaceGAN script shifts w inside
the encoder (``CLCAE.forward(w_shift=...)``); the functions here edit the encoder's final codes, like its
GANSpace path.
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

KIND = "directions"  # checkpoint kind; a bundled name resolves to data/pretrained/<name>/directions.pt
Reader = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]  # images [N, 3, H, W] -> {name: P(1) [N]}
Features = torch.Tensor | dict[int, torch.Tensor]  # F at one resolution, or {res: F} (inpainting stage 2)


@dataclass
class Direction:
    """One edit direction in W, ``vector`` [style_dim] of unit norm, and what is known about it.

    ``kind``: "interfacegan" (boundary normal, pointing towards the attribute) or "ganspace" (principal
    component). ``std``: standard deviation of sampled w along ``vector`` (``strength = k * std`` moves k
    sigmas). ``accuracy``: held-out accuracy of the boundary; ``explained_variance``: fraction of the total
    variance of w along the component; ``offset``: the boundary is {w : vector · w = offset};
    ``layers``: default layer range [start, end) of w⁺ for edits (None: all layers).
    """

    vector: torch.Tensor
    kind: str
    std: float
    accuracy: float | None = None
    explained_variance: float | None = None
    offset: float | None = None
    layers: tuple[int, int] | None = None

    def with_layers(self, start: int, end: int) -> Direction:
        """A copy whose edits apply to layers [start, end) of w⁺ by default (GANSpace Sec. 3)."""
        return dataclasses.replace(self, layers=(int(start), int(end)))


class Directions(dict):
    """``name -> Direction`` (insertion order kept) plus the generator the directions belong to."""

    def __init__(self, items=(), generator: str | None = None, generator_config: dict | None = None) -> None:
        super().__init__(items)
        self.generator, self.generator_config = generator, generator_config

    def matrix(self, names: Sequence[str] | None = None) -> torch.Tensor:
        """The vectors of ``names`` (default: all) stacked: [K, style_dim]."""
        return torch.stack([self[k].vector for k in (list(self) if names is None else names)])

    def conditional(self, name: str, on: Sequence[str]) -> Direction:
        """``name`` with its components along the directions ``on`` removed (InterFaceGAN Sec. 2.3); accuracy
        and offset are cleared, ``std`` is still that of the original direction."""
        v = orthogonalize(self[name].vector, self.matrix(on))
        return dataclasses.replace(self[name], vector=v, accuracy=None, offset=None)


# ---------------------------------------------------------------------------------------------------------
# Sampling and labelling


def _device(G: nn.Module) -> torch.device:
    return next(G.parameters()).device


@torch.no_grad()
def sample_w(G: nn.Module, n: int, seed: int = 0, truncation: float = 1.0, batch: int = 1024) -> torch.Tensor:
    """w = G.mapping(z) for ``n`` z drawn from a generator seeded with ``seed``: [n, style_dim]."""
    z = torch.randn(n, G.style_dim, generator=torch.Generator().manual_seed(seed))
    dev = _device(G)
    return torch.cat([G.mapping(z[i : i + batch].to(dev), truncation) for i in range(0, n, batch)])


def sfn_reader(sfn: nn.Module | None = None, attributes: Sequence[str] | None = None) -> Reader:
    """The default attribute reader: the SFN's binary heads, P(attribute) in [0, 1] (``SFN.attributes``
    applies the sigmoid). ``sfn`` defaults to the bundled ``load_sfn("sfn")``; images are clamped to
    [-1, 1]."""
    if sfn is None:
        from .models.sfn import load_sfn

        sfn = load_sfn("sfn")
    names = tuple(attributes) if attributes is not None else tuple(sfn.cfg.binary)
    if unknown := [a for a in names if a not in sfn.cfg.binary]:
        raise ValueError(f"not binary SFN attributes: {unknown}; choose from {list(sfn.cfg.binary)}")
    dev = next(sfn.parameters()).device

    @torch.no_grad()
    def read(images: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = sfn.attributes(images.clamp(-1, 1).to(dev))
        return {a: probs[a] for a in names}

    return read


@torch.no_grad()
def sample_labelled(
    G: nn.Module,
    n: int,
    reader: Reader | None = None,
    seed: int = 0,
    truncation: float = 1.0,
    batch: int = 64,
    noise_mode: str = "const",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sample w, render G(w) and read attributes: (w [n, D] on the CPU, {name: P(1) [n]})."""
    reader = reader if reader is not None else sfn_reader()
    w = sample_w(G, n, seed, truncation)
    probs: dict[str, list[torch.Tensor]] = {}
    for i in range(0, n, batch):
        for k, p in reader(G.synthesis(w[i : i + batch], noise_mode=noise_mode)).items():
            probs.setdefault(k, []).append(p.detach().float().reshape(-1).cpu())
    return w.cpu(), {k: torch.cat(v) for k, v in probs.items()}


# ---------------------------------------------------------------------------------------------------------
# InterFaceGAN: linear boundaries (Sec. 2.2) and conditional directions (Sec. 2.3)


def fit_boundary(
    w: torch.Tensor, labels: torch.Tensor, l2: float = 1e-4, max_iter: int = 100
) -> tuple[torch.Tensor, float]:
    """L2-regularised logistic regression on w [N, D] with labels {0, 1} [N], solved by damped Newton steps.

    Features are centred and divided by one global scale (which leaves the normal's direction in W
    unchanged); the bias is not penalised. Returns (unit normal [D] pointing to label 1, offset) with the
    boundary {w : normal · w = offset}.
    """
    x, y = w.detach().double().cpu(), labels.detach().double().cpu().reshape(-1)
    mu = x.mean(0)
    scale = (x - mu).pow(2).mean().sqrt().clamp_min(1e-12)
    a = torch.cat([(x - mu) / scale, torch.ones(len(x), 1, dtype=x.dtype)], 1)  # [N, D + 1]
    pen = torch.full((a.shape[1],), l2, dtype=x.dtype)
    pen[-1] = 0.0
    theta = torch.zeros(a.shape[1], dtype=x.dtype)

    def loss(t: torch.Tensor) -> torch.Tensor:
        s = a @ t
        return (F.softplus(s) - y * s).mean() + 0.5 * (pen * t * t).sum()

    for _ in range(max_iter):
        p = torch.sigmoid(a @ theta)
        grad = a.t() @ (p - y) / len(y) + pen * theta
        if grad.abs().max() < 1e-9:
            break
        hess = (a.t() * (p * (1 - p))) @ a / len(y) + torch.diag(pen + 1e-10)
        step, t, f0 = torch.linalg.solve(hess, grad), 1.0, loss(theta)
        while loss(theta - t * step) > f0 - 1e-4 * t * (grad @ step) and t > 1e-8:
            t /= 2  # backtracking line search
        theta = theta - t * step
    coef = theta[:-1] / scale  # decision function coef · w + b in raw w units
    b = theta[-1] - coef @ mu
    norm = coef.norm().clamp_min(1e-12)
    return (coef / norm).float(), float(-b / norm)


def fit_interfacegan(
    w: torch.Tensor,
    probs: Mapping[str, torch.Tensor],
    ambiguous: float = 0.2,
    val_frac: float = 0.2,
    min_per_class: int = 5,
    seed: int = 0,
    l2: float = 1e-4,
) -> Directions:
    """One InterFaceGAN direction per attribute from sampled w [N, D] and P(attribute) {name: [N]}.

    Label = P > 0.5; samples with |P - 0.5| < ``ambiguous`` are dropped (the reader is unsure of them).
    The kept samples are split once (seeded) into ``1 - val_frac`` for fitting and ``val_frac`` held out;
    ``accuracy`` is measured on the held-out ones. ValueError when a class has fewer than ``min_per_class``.
    """
    perm = torch.randperm(len(w), generator=torch.Generator().manual_seed(seed))
    w = w.detach().float().cpu()
    out = Directions()
    for name, p in probs.items():
        p = p.detach().float().reshape(-1).cpu()[perm]
        keep = (p - 0.5).abs() >= ambiguous
        x, y = w[perm][keep], (p[keep] > 0.5).float()
        n_val = int(round(val_frac * len(y)))
        (x_va, x_tr), (y_va, y_tr) = x.split([n_val, len(y) - n_val]), y.split([n_val, len(y) - n_val])
        pos, neg = (int(y_tr.sum()), int(y_va.sum())), (int((1 - y_tr).sum()), int((1 - y_va).sum()))
        if min(pos[0], neg[0]) < min_per_class or (n_val and min(pos[1], neg[1]) == 0):
            raise ValueError(
                f"attribute {name!r}: too few confident samples per class (positives/negatives: fit "
                f"{pos[0]}/{neg[0]}, held out {pos[1]}/{neg[1]}); sample more w or lower `ambiguous`"
            )
        normal, offset = fit_boundary(x_tr, y_tr, l2)
        acc = float((((x_va @ normal) > offset).float() == y_va).float().mean()) if n_val else float("nan")
        std = float((w @ normal).std())
        out[name] = Direction(normal, "interfacegan", std, accuracy=acc, offset=offset)
    return out


def interfacegan_directions(
    G: nn.Module,
    reader: Reader | None = None,
    n: int = 4000,
    seed: int = 0,
    truncation: float = 1.0,
    generator: str | None = None,
    **fit_kwargs,
) -> Directions:
    """InterFaceGAN (Sec. 2.2) end to end: sample ``n`` w, render, label with ``reader`` (default: the SFN's
    binary attributes), fit one boundary per attribute (:func:`fit_interfacegan` takes ``fit_kwargs``)."""
    w, probs = sample_labelled(G, n, reader, seed, truncation)
    dirs = fit_interfacegan(w, probs, seed=seed, **fit_kwargs)
    dirs.generator, dirs.generator_config = generator, G.config
    return dirs


def orthogonalize(d: torch.Tensor, others: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Conditional direction (InterFaceGAN Sec. 2.3): ``d`` [D] minus its projection onto the span of
    ``others`` ([K, D] or a list of [D]; need not be orthogonal), renormalised to unit length."""
    m = torch.stack(list(others)) if not isinstance(others, torch.Tensor) else others.reshape(-1, d.shape[-1])
    q, _ = torch.linalg.qr(m.double().t())  # [D, K], orthonormal basis of the span
    r = d.double() - q @ (q.t() @ d.double())
    if r.norm() < 1e-6 * d.double().norm():
        raise ValueError("the direction lies in the span of the others; nothing is left after projection")
    return (r / r.norm()).to(d.dtype)


# ---------------------------------------------------------------------------------------------------------
# GANSpace: PCA in W (Sec. 2.2)


def ganspace_directions(
    G: nn.Module,
    n: int = 10000,
    k: int | None = None,
    seed: int = 0,
    truncation: float = 1.0,
    generator: str | None = None,
) -> Directions:
    """The first ``k`` (default all) principal components of ``n`` sampled w, named ``pc0, pc1, ...`` by
    decreasing variance; sign fixed so that each vector's largest-magnitude entry is positive."""
    w = sample_w(G, n, seed, truncation).double().cpu()
    cov = torch.cov(w.t())  # [D, D]
    var, vecs = torch.linalg.eigh(cov)  # ascending
    var, vecs = var.flip(0).clamp_min(0), vecs.flip(1)
    idx = vecs.abs().argmax(0)
    vecs = vecs * torch.sign(vecs[idx, torch.arange(vecs.shape[1])])
    total = float(var.sum())
    out = Directions(generator=generator, generator_config=G.config)
    for i in range(vecs.shape[1] if k is None else min(k, vecs.shape[1])):
        v = float(var[i])
        out[f"pc{i}"] = Direction(vecs[:, i].float(), "ganspace", v**0.5, explained_variance=v / total)
    return out


# ---------------------------------------------------------------------------------------------------------
# Applying edits


def _unpack(direction: Direction | torch.Tensor, layers: tuple[int, int] | None):
    if isinstance(direction, Direction):
        return direction.vector, layers if layers is not None else direction.layers
    return direction, layers


def edit(
    G: nn.Module,
    latent: torch.Tensor,
    direction: Direction | torch.Tensor,
    strength: float | torch.Tensor,
    layers: tuple[int, int] | None = None,
) -> torch.Tensor:
    """``latent + strength * direction`` on layers [start, end) of w⁺ (default: all, or the Direction's).

    ``latent`` is w [N, D] (returned as w [N, D] unless ``layers`` leaves some layers out, then as w⁺
    [N, n_latent, D]) or w⁺ [N, n_latent, D]. ``strength`` is a number or one per sample [N]. A
    ``NonlinearDirection`` (:mod:`ganinv.nonlinear_editing`) walks its gradient field instead, with
    ``strength`` the signed largest path length (same shapes and layer rule).
    """
    if getattr(direction, "kind", None) == "nonlinear":
        from .nonlinear_editing import edit_nonlinear

        return edit_nonlinear(G, latent, direction, strength, layers)
    d, layers = _unpack(direction, layers)
    if d.shape != (G.style_dim,):
        raise ValueError(f"direction: expected shape [{G.style_dim}], got {list(d.shape)}")
    if latent.ndim not in (2, 3):
        raise ValueError(f"latent: expected w [N, D] or w+ [N, L, D], got shape {list(latent.shape)}")
    start, end = (0, G.n_latent) if layers is None else layers
    if not 0 <= start < end <= G.n_latent:
        raise ValueError(f"layers must satisfy 0 <= start < end <= {G.n_latent}, got {layers}")
    s = torch.as_tensor(strength, dtype=latent.dtype, device=latent.device).reshape(-1, 1)  # [N or 1, 1]
    delta = s * d.to(latent)  # [N or 1, D]
    if latent.ndim == 2 and (start, end) == (0, G.n_latent):
        return latent + delta
    w_plus = G.broadcast(latent)  # [N, L, D]
    mask = torch.zeros(G.n_latent, 1, dtype=latent.dtype, device=latent.device)
    mask[start:end] = 1.0
    return w_plus + mask * delta.unsqueeze(1)


def render(
    G: nn.Module,
    latent: torch.Tensor,
    f: Features | None = None,
    noise_mode: str = "const",
    noise: list | None = None,
) -> torch.Tensor:
    """G(latent), with F features replacing the generator's own: ``f`` [N, C, r, r] at its resolution r, or
    ``{r: [N, C(r), r, r]}`` replacing several (through ``feature_hook``)."""
    kw = dict(noise_mode=noise_mode, noise=noise)
    if f is None:
        return G.synthesis(latent, **kw)
    if isinstance(f, torch.Tensor):
        return G.synthesis(latent, f=f, f_res=f.shape[-1], **kw)
    return G.synthesis(latent, feature_hook=lambda res, x: f.get(res, x), **kw)


def edit_f(
    G: nn.Module,
    w_plus: torch.Tensor,
    f: Features,
    direction: Direction | torch.Tensor,
    strength: float | torch.Tensor,
    f_res: int | None = None,
    layers: tuple[int, int] | None = None,
    noise_mode: str = "const",
    noise: list | None = None,
) -> tuple[torch.Tensor, Features]:
    """The F-space edit of CLCAE §4 (FS / HFGI): returns (ŵ⁺ [N, L, D], f̂) with f̂ = f + G_f(ŵ⁺) − G_f(w⁺).

    G_f is G's own feature at ``f_res`` (default: ``f.shape[-1]``) from ``G.synthesis(return_features=True)``;
    ``f`` may also be ``{res: feature}``, edited per resolution. Both G_f passes use the same noise
    (``noise``, else ``G.make_noise(N, noise_mode)``); render with :func:`render` (or
    ``G.synthesis(ŵ⁺, f=f̂, f_res=f_res)``) under that same noise, or the difference term is off.
    """
    w_plus = G.broadcast(w_plus)
    w_hat = G.broadcast(edit(G, w_plus, direction, strength, layers))
    if isinstance(f, torch.Tensor) and f_res is not None and f.shape[-1] != f_res:
        raise ValueError(f"f has resolution {f.shape[-1]}, but f_res={f_res}")
    noise = G.make_noise(w_plus.shape[0], noise_mode) if noise is None else noise
    own = G.synthesis(w_plus, noise=noise, return_features=True)[1]
    own_hat = G.synthesis(w_hat, noise=noise, return_features=True)[1]
    if isinstance(f, torch.Tensor):
        return w_hat, f + (own_hat[f.shape[-1]] - own[f.shape[-1]])  # bracketed: exactly f when unedited
    return w_hat, {r: x + (own_hat[r] - own[r]) for r, x in f.items()}


_W_PLUS_KEYS = ("w_plus", "w_plus_mix")  # CLCAE / encoders; the inpainting mixer's output


def apply_edit(
    G: nn.Module,
    result: Mapping | tuple,
    direction: Direction | torch.Tensor,
    strength: float | torch.Tensor,
    layers: tuple[int, int] | None = None,
    use_f: bool = True,
    noise_mode: str = "const",
) -> dict:
    """Edit any inversion result and render it: F edit when it holds w⁺ and ``f`` (unless ``use_f=False``,
    e.g. for large pose edits, docs/papers/diverse_inpainting.md §7), else a W⁺ edit, else a W edit.

    ``result``: a dict (or a NamedTuple such as ``CLCAEOutput``) with ``w`` [N, D], ``w_plus`` /
    ``w_plus_mix`` [N, L, D] and optionally ``f`` (tensor or {res: tensor}). Returns ``{"w_plus": ŵ⁺, "f": f̂,
    "image": ...}``, ``{"w_plus", "image"}`` or ``{"w" (or "w_plus" if layers restrict), "image"}``.
    """
    res = dict(result._asdict()) if hasattr(result, "_asdict") else dict(result)
    w_plus = next((res[k] for k in _W_PLUS_KEYS if res.get(k) is not None), None)
    code = w_plus if w_plus is not None else res.get("w")
    if code is None:
        raise ValueError(f"inversion result holds no latent code (keys: {sorted(res)}); expected w or w_plus")
    f = res.get("f") if use_f else None
    noise = G.make_noise(code.shape[0], noise_mode)
    if f is not None:
        w_hat, f_hat = edit_f(G, code, f, direction, strength, layers=layers, noise=noise)
        return {"w_plus": w_hat, "f": f_hat, "image": render(G, w_hat, f_hat, noise=noise)}
    code = edit(G, code, direction, strength, layers)
    return {"w" if code.ndim == 2 else "w_plus": code, "image": render(G, code, noise=noise)}


# ---------------------------------------------------------------------------------------------------------
# Saving and loading (kind "directions")


def save_directions(
    path: str | os.PathLike,
    directions: Mapping[str, Direction],
    generator: str | None = None,
    generator_config: dict | None = None,
) -> None:
    """Write directions with their metadata and the generator they belong to (a bundled name or a path,
    and ``G.config``) as a ganinv checkpoint of kind "directions" (written atomically)."""
    if not directions or not all(isinstance(d, Direction) for d in directions.values()):
        raise ValueError("save_directions needs a non-empty mapping name -> Direction")
    dims = {tuple(d.vector.shape) for d in directions.values()}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ValueError(f"all direction vectors must share one shape [style_dim], got {sorted(dims)}")
    generator = generator if generator is not None else getattr(directions, "generator", None)
    if generator_config is None:
        generator_config = getattr(directions, "generator_config", None)
    meta = {k: {f.name: getattr(d, f.name) for f in dataclasses.fields(d)[1:]} for k, d in directions.items()}
    for m in meta.values():
        m["layers"] = list(m["layers"]) if m["layers"] is not None else None
    sd = {k: d.vector.detach().float() for k, d in directions.items()}
    config = {"style_dim": next(iter(dims))[0], "names": list(directions)}
    extra = {"generator": None if generator is None else str(generator), "generator_config": generator_config}
    save_checkpoint(path, KIND, config, sd, meta=meta, **extra)


def load_directions(path_or_name: str | os.PathLike, G: nn.Module | None = None) -> Directions:
    """Load :func:`save_directions` output: a path, a folder with ``directions.pt`` or a bundled name
    (``data/pretrained/<name>/directions.pt``). With ``G``, check that the directions were made for a
    generator of the same config (and style_dim); :class:`CheckpointError` otherwise or on any problem with
    the file."""
    path = resolve_checkpoint(path_or_name, KIND)
    ckpt = load_checkpoint(path, KIND)
    cfg, sd, meta = ckpt["config"], ckpt["state_dict"], ckpt.get("meta")
    names = cfg.get("names")
    if not isinstance(meta, dict) or not isinstance(names, list) or not set(names) == set(sd) == set(meta):
        raise CheckpointError(f"{path}: directions file without matching names/vectors/metadata; re-save it")
    stored = ckpt.get("generator_config")
    if G is not None:
        if cfg.get("style_dim") != G.style_dim:
            raise CheckpointError(
                f"{path}: directions have style_dim {cfg.get('style_dim')}, the generator {G.style_dim}"
            )
        if isinstance(stored, dict) and stored != G.config:
            diff = sorted(k for k in set(stored) | set(G.config) if stored.get(k) != G.config.get(k))
            raise CheckpointError(
                f"{path}: directions belong to another generator (config differs in {diff}: stored "
                f"{ {k: stored.get(k) for k in diff} }, given { {k: G.config.get(k) for k in diff} }); "
                "load the generator they were made with or recompute them"
            )
    out = Directions(generator=ckpt.get("generator"), generator_config=stored)
    dev = _device(G) if G is not None else "cpu"
    for k in names:
        m = dict(meta[k])
        m["layers"] = tuple(m["layers"]) if m.get("layers") is not None else None
        try:
            out[k] = Direction(vector=sd[k].float().to(dev), **m)
        except TypeError as e:
            raise CheckpointError(f"{path}: bad metadata for direction {k!r} ({e}); re-save it") from None
    return out
