"""Evaluation of diverse inpainting (Sec. 4 of Yildirim et al., ICCV 2023;
``docs/papers/diverse_inpainting.md`` §8) and the baselines it is compared with, all behind one interface.

A *method* is a callable ``method(x, mask, k, seed) -> [N, k, 3, H, W]``: ``k`` completions of the images
``x`` [N, 3, H, W] in [-1, 1] with ``mask`` [N, 1, H, W] (1 = keep), reproducible from ``seed``. Raw outputs
are returned; the evaluation pastes the known pixels itself where a metric needs a completed image.

* :class:`InpainterMethod`: the trained model, mixing a fresh ``w_r`` per sample (diverse), or
  ``mixing=False``: the same encoder without mixing (deterministic);
* :class:`MaskedOptimization`: optimisation of w⁺ from ``w_avg`` with the loss on known pixels only
  (MSE + LPIPS-SFN; deterministic unless ``random_starts``), the inversion baseline;
* :class:`Biharmonic`: classical smooth inpainting, :func:`biharmonic_inpaint`.

:func:`evaluate_inpainting` uses held-out SynthFaces images (not generated ones; seed ``EVAL_SEED``) and, per
hole-ratio bucket (CoModGAN's ``h0`` ... ``h4``), fixed masks (:func:`ganinv.data.masks.bucket_masks`,
seed ``MASK_EVAL_SEED``). Per bucket (our protocol; the paper's is unknown):

* ``fid_sfn``, ``u_ids_sfn``, ``p_ids_sfn``: the first completion of every input (known pixels pasted)
  against the n originals (paired for IDS), SFN embeddings; U-/P-IDS re-implemented (``ganinv.fid``);
* ``psnr_unerased`` (dB, capped at 100 for exact copies) and ``lpips_sfn_unerased``: raw outputs against
  the originals on the known pixels only (mean over the k samples) — the fidelity stage 2 is for;
* ``diversity_lpips_sfn``: mean pairwise LPIPS-SFN between the k completions of an input inside the holes
  (:func:`ganinv.metrics.pairwise_diversity`), averaged over inputs;
* ``seam_excess``: colour seams at the hole border of the pasted completion, :func:`seam_excess` (mean over
  the k samples; 0 = the border is as smooth as in the original, > 0 = a visible edge); a method with
  ``seamless = True`` (the row "inpainter-seamless") is pasted with :func:`ganinv.blending.seamless_paste`
  for this and the other pasted-image metrics, its raw outputs (PSNR / LPIPS-SFN unerased) unchanged;
* ``seconds_per_image``: wall time of the method per completed image (one sample of one input; a
  deterministic method computes once for its k identical samples).

The benchmark rows (``ganinv eval inpainting``, ``figures/05_inpainting.json``) are :class:`Entry` objects
``NAME=METHOD[@MODEL]``: :data:`METHODS` on an inpainter checkpoint (path or bundled name).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .. import metrics
from ..blending import biharmonic_inpaint
from ..common import EVAL_SEED, rounded, write_json
from ..data.masks import HOLE_BUCKETS, bucket_masks, hole_ratio
from ..data.pairs import pair_seed
from ..data.synthfaces import real_images
from ..devices import sync
from ..fid import SFNExtractor, compute_features, fid, ids_scores
from ..losses import LossWeights, ReconstructionLoss
from ..metrics import lpips_features, pairwise_diversity, seam_excess
from ..models.inpainting import Inpainter, composite, load_inpainter
from . import reconstruction

__all__ = [
    "EVAL_SEED", "MASK_EVAL_SEED", "Method", "InpainterMethod", "MaskedOptimization", "Biharmonic",
    "biharmonic_inpaint", "as_method", "seam_excess", "evaluate_inpainting", "evaluate_methods",
    "metric_table", "write_json", "METHODS", "Entry", "parse_entry", "default_entries", "build_method",
    "evaluate_entries", "entries_from_specs", "merge_results", "mean_over_buckets", "markdown_table",
    "bucket_figure", "BUCKET_NAMES", "PER_IMAGE_KEYS", "add_comparisons",
]  # fmt: skip

MASK_EVAL_SEED = 20230727  # fixed evaluation masks (training masks use other seeds)
PSNR_CAP = 100.0  # dB: a method that copies the known pixels exactly would have infinite PSNR there
Method = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]


def _repeat(y: torch.Tensor, k: int) -> torch.Tensor:
    return y.unsqueeze(1).expand(-1, k, -1, -1, -1)  # [N, 3, H, W] -> [N, k, 3, H, W]


class InpainterMethod:
    """An :class:`Inpainter` as a method: ``mixing=True`` samples ``mapping(z)`` per completion
    (:meth:`Inpainter.sample`); ``mixing=False`` is the encoder alone (w⁺_mix = w⁺_e), deterministic.
    ``seamless``: the evaluation pastes the known pixels with the Poisson paste
    (:func:`ganinv.blending.seamless_paste`) instead of a plain one; the raw outputs are the same."""

    def __init__(self, model: Inpainter, stage: int = 2, mixing: bool = True, seamless: bool = False) -> None:
        self.model, self.stage, self.mixing, self.seamless = model.eval(), stage, mixing, seamless

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, mask: torch.Tensor, k: int, seed: int) -> torch.Tensor:
        if self.mixing and self.model.mixer is not None:
            return self.model.sample(x, mask, n=k, seed=seed, stage=self.stage)
        return _repeat(self.model(x, mask, stage=self.stage, mixing=False).image, k)


class MaskedOptimization:
    """Inversion baseline: Adam on w⁺ [N, n_latent, D] (from ``w_avg``, or from ``mapping(z)`` per sample
    with ``random_starts``) minimising MSE + ``lpips_weight`` LPIPS-SFN on the known pixels of G(w⁺)."""

    def __init__(
        self, G, steps: int = 200, lr: float = 0.05, sfn=None, lpips_weight: float = 0.8, random_starts=False
    ) -> None:
        self.G, self.steps, self.lr, self.random_starts = G, steps, lr, random_starts
        weights = LossWeights(mse=1.0, lpips=lpips_weight if sfn is not None else 0.0, id=0.0)
        self.loss = ReconstructionLoss(weights, feature_net=sfn)

    def fit(self, x: torch.Tensor, mask: torch.Tensor, w_init: torch.Tensor) -> torch.Tensor:
        """Optimise from ``w_init`` [N, D] or [N, n_latent, D]; returns G(w⁺) [N, 3, H, W]."""
        G = self.G
        flags = [p.requires_grad for p in G.parameters()]
        G.requires_grad_(False)
        w = G.broadcast(w_init).detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr)
        try:
            target = self.loss.prepare(x, mask)  # the target's SFN features once, not every step
            with torch.enable_grad():
                for _ in range(self.steps):
                    loss = self.loss(G.synthesis(w), target)["total"]
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        finally:
            for p, flag in zip(G.parameters(), flags):
                p.requires_grad_(flag)
        with torch.no_grad():
            return G.synthesis(w)

    def __call__(self, x: torch.Tensor, mask: torch.Tensor, k: int, seed: int) -> torch.Tensor:
        n, G = x.shape[0], self.G
        if not self.random_starts:
            return _repeat(self.fit(x, mask, G.get_w_avg().expand(n, -1)), k)
        z = torch.randn(k, n, G.style_dim, generator=torch.Generator().manual_seed(seed)).to(x.device)
        with torch.no_grad():
            starts = [G.mapping(z[j]) for j in range(k)]
        return torch.stack([self.fit(x, mask, w0) for w0 in starts], dim=1)


class Biharmonic:
    """Classical baseline: :func:`biharmonic_inpaint`, deterministic (the k samples are identical)."""

    def __init__(self, tol: float = 1e-6, max_iter: int = 20000) -> None:
        self.tol, self.max_iter = tol, max_iter

    def __call__(self, x: torch.Tensor, mask: torch.Tensor, k: int, seed: int) -> torch.Tensor:
        return _repeat(biharmonic_inpaint(x, mask, self.tol, self.max_iter), k)


# ---------------------------------------------------------------------------------------------------------
# Evaluation


def as_method(method: Method | Inpainter) -> Method:
    return InpainterMethod(method) if isinstance(method, Inpainter) else method


def bucket_label(bucket: int | tuple[float, float]) -> str:
    """CoModGAN's names ``h0`` ... ``h4`` for :data:`HOLE_BUCKETS` indices, else ``"lo-hi"``."""
    if isinstance(bucket, int):
        return f"h{bucket}"
    return "-".join(f"{float(v):.2f}" for v in bucket)


BUCKET_NAMES = tuple(bucket_label(i) for i in range(len(HOLE_BUCKETS)))  # "h0" ... "h4"


@torch.no_grad()
def evaluate_inpainting(
    method: Method | Inpainter,
    G,
    sfn,
    n: int = 100,
    buckets: Iterable[int | tuple[float, float]] = range(len(HOLE_BUCKETS)),
    samples: int = 5,
    seed: int = EVAL_SEED,
    mask_seed: int = MASK_EVAL_SEED,
    mask_kind: str = "mixed",
    batch_size: int = 25,
    per_image: bool = False,
) -> dict:
    """Metrics of ``method`` (or an :class:`Inpainter`) on ``n`` held-out SynthFaces images at G's size
    (SynthFaces seed ``seed``) per hole-ratio bucket, with ``samples`` >= 2 completions per input; the
    module docstring defines each number. Returns ``{"n", "samples", "seed", "mask_seed", "buckets":
    {label: {metric: float}}}``, with ``per_image`` also ``"per_image": {label: {metric: [n floats]}}`` for
    the per-input metrics (:data:`PER_IMAGE_KEYS`, each the mean over the samples of one input)."""
    if n < 2 or samples < 2:
        raise ValueError(f"evaluate_inpainting needs n >= 2 images and samples >= 2, got {n}, {samples}")
    method, dev = as_method(method), G.w_avg.device
    sfn = sfn.to(dev).eval()
    extractor = SFNExtractor(sfn)
    real = real_images(G.size, n, seed=seed).to(dev)  # [n, 3, S, S]
    f_real = compute_features(real, extractor, batch_size=250, progress=False)

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return lpips_features(a, b, sfn)

    result: dict = {"n": n, "samples": samples, "seed": seed, "mask_seed": mask_seed, "buckets": {}}
    images: dict[str, dict[str, list[float]]] = {}
    for bucket in buckets:
        masks = bucket_masks(bucket, n, G.size, seed=mask_seed, kind=mask_kind).to(dev)
        first, psnr, lpips_known, diversity, seams, seconds = [], [], [], [], [], 0.0
        for start in range(0, n, batch_size):
            x, m = real[start : start + batch_size], masks[start : start + batch_size]
            sync(dev)
            t0 = time.perf_counter()
            ys = method(x, m, samples, pair_seed(seed, mask_seed, start) >> 2)  # [B, k, 3, S, S]
            sync(dev)
            seconds += time.perf_counter() - t0
            if ys.shape != (x.shape[0], samples, *x.shape[1:]):
                raise ValueError(f"method returned {list(ys.shape)}, expected [{x.shape[0]}, {samples}, ...]")
            done = composite(x, m, ys, seamless=getattr(method, "seamless", False))  # [B, k, 3, S, S]
            first.append(done[:, 0])
            area = m.mean((1, 2, 3))
            for j in range(samples):
                psnr.append(metrics.psnr(ys[:, j], x, m).clamp(max=PSNR_CAP))
                lpips_known.append(distance(ys[:, j] * m, x * m) / area)
                seams.append(seam_excess(done[:, j], x, m))
            diversity.append(pairwise_diversity(done.transpose(0, 1), distance, mask=1 - m))
        f_fake = compute_features(torch.cat(first), extractor, batch_size=250, progress=False)
        ids = ids_scores(f_real, f_fake)
        result["buckets"][bucket_label(bucket)] = {
            "hole_ratio": float(hole_ratio(masks).mean()),
            "fid_sfn": fid(f_fake, f_real),
            "u_ids_sfn": ids["u_ids"],
            "p_ids_sfn": ids["p_ids"],
            "psnr_unerased": float(torch.cat(psnr).mean()),
            "lpips_sfn_unerased": float(torch.cat(lpips_known).mean()),
            "diversity_lpips_sfn": float(torch.cat(diversity).mean()),
            "seam_excess": float(torch.cat(seams).mean()),
            "seconds_per_image": seconds / (n * samples),
        }
        per_sample = {"psnr_unerased": psnr, "lpips_sfn_unerased": lpips_known, "seam_excess": seams}
        images[bucket_label(bucket)] = {
            **{k: _per_input(v, samples) for k, v in per_sample.items()},
            "diversity_lpips_sfn": torch.cat(diversity).tolist(),
        }
    if per_image:
        result["per_image"] = images
    return result


PER_IMAGE_KEYS = ("psnr_unerased", "lpips_sfn_unerased", "diversity_lpips_sfn", "seam_excess")


def _per_input(values: list[torch.Tensor], samples: int) -> list[float]:
    """Per-sample values appended batch by batch ([B] per sample j) -> the mean over samples per input."""
    batches = [torch.stack(values[i : i + samples]).mean(0) for i in range(0, len(values), samples)]
    return torch.cat(batches).tolist()


def evaluate_methods(methods: dict[str, Method | Inpainter], G, sfn, **kwargs) -> dict[str, dict]:
    """:func:`evaluate_inpainting` for every named method (same images, masks and seeds): ``{name: ...}``."""
    return {name: evaluate_inpainting(m, G, sfn, **kwargs) for name, m in methods.items()}


def metric_table(
    results: dict[str, dict], metrics: Sequence[str] = ("fid_sfn", "diversity_lpips_sfn")
) -> str:
    """A plain-text table: one row per method and bucket, one column per metric."""
    lines = ["method  bucket  " + "  ".join(metrics)]
    for name, res in results.items():
        for label, values in res["buckets"].items():
            lines.append(f"{name}  {label}  " + "  ".join(f"{values[k]:.4g}" for k in metrics))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# The benchmark: named rows NAME=METHOD[@MODEL] (``ganinv eval inpainting``, figures/05_inpainting.json)

METHODS = {
    "inpainter": "the trained model, stage 2, a fresh w_r per sample (diverse)",
    "inpainter-s1": "the same model without its stage-2 skip features (the 'no stage 2' ablation)",
    "inpainter-seamless": "the trained model as 'inpainter', known pixels pasted seamlessly (Poisson)",
    "no-mixing": "the same encoder without the mixer: w_plus_mix = w_plus_e, stage 2 (deterministic)",
    "optim": "masked optimisation of w+ from w_avg (MSE + LPIPS-SFN on the known pixels), no model",
    "biharmonic": "classical smooth inpainting (thin-plate energy), no model",
}
MODEL_FREE = ("optim", "biharmonic")
TABLE_KEYS = ("fid_sfn", "u_ids_sfn", "p_ids_sfn", "psnr_unerased", "lpips_sfn_unerased",
              "diversity_lpips_sfn", "seam_excess", "seconds_per_image")  # fmt: skip
LOWER_IS_BETTER = {"fid_sfn": True, "u_ids_sfn": False, "p_ids_sfn": False, "psnr_unerased": False,
                   "lpips_sfn_unerased": True, "diversity_lpips_sfn": False, "seam_excess": True,
                   "seconds_per_image": True}  # fmt: skip


@dataclass
class Entry:
    """One benchmark row: ``method`` (a key of :data:`METHODS`) on the inpainter ``model`` (path or bundled
    name; model methods only), with ``options`` (``steps`` of "optim"), on the first ``n`` images (None:
    all; the optimisation baseline is slow)."""

    method: str
    model: str | None = None
    options: dict = field(default_factory=dict)
    n: int | None = None


def parse_entry(spec: str, model: str = "synthfaces64") -> tuple[str, Entry]:
    """``NAME=METHOD[@MODEL]`` (the ``--entry`` option; MODEL defaults to ``model``) -> (NAME, Entry)."""
    name, sep, rest = spec.partition("=")
    method, _, path = rest.partition("@")
    if not sep or not name or not method:
        raise ValueError(f"--entry {spec!r}: expected NAME=METHOD[@MODEL], e.g. 'no A=inpainter-s1@runs/a'")
    if method not in METHODS:
        raise ValueError(f"--entry {spec!r}: unknown method {method!r}; choose from {sorted(METHODS)}")
    if path and method in MODEL_FREE:
        raise ValueError(f"--entry {spec!r}: method {method!r} takes no model")
    return name, Entry(method, None if method in MODEL_FREE else (path or model))


def default_entries(model: str = "synthfaces64", optim_steps: int = 200, optim_n: int | None = None) -> dict:
    """The main comparison: the model (pasted plainly and seamlessly), its two ablations that need no
    retraining, and both baselines."""
    return {
        "diverse (ours)": Entry("inpainter", model),
        "diverse (ours), seamless paste": Entry("inpainter-seamless", model),
        "no stage 2": Entry("inpainter-s1", model),
        "no mixing (deterministic)": Entry("no-mixing", model),
        "masked optimisation": Entry("optim", options={"steps": optim_steps}, n=optim_n),
        "biharmonic": Entry("biharmonic"),
    }


def build_method(entry: Entry, G, sfn, cache: dict | None = None) -> Method:
    """The callable of one row; ``cache`` {model: Inpainter} loads each checkpoint once."""
    if entry.method == "optim":
        return MaskedOptimization(G, sfn=sfn, **entry.options)
    if entry.method == "biharmonic":
        return Biharmonic(**entry.options)
    cache = {} if cache is None else cache
    if entry.model not in cache:
        cache[entry.model] = load_inpainter(entry.model, G=G, device=G.w_avg.device)
    model = cache[entry.model]
    stage = 1 if entry.method == "inpainter-s1" else 2
    seamless = entry.method == "inpainter-seamless"
    return InpainterMethod(model, stage=stage, mixing=entry.method != "no-mixing", seamless=seamless)


def mean_over_buckets(buckets: dict[str, dict]) -> dict[str, float]:
    """Every metric averaged over the hole-ratio buckets of one :func:`evaluate_inpainting` result."""
    keys = next(iter(buckets.values())).keys()
    return {k: sum(b[k] for b in buckets.values()) / len(buckets) for k in keys}


def evaluate_entries(
    entries: dict[str, Entry],
    G,
    sfn,
    n: int = 200,
    generator: str = "",
    sfn_name: str = "",
    progress: bool = True,
    **kwargs,
) -> dict:
    """:func:`evaluate_inpainting` for every row on the same held-out images and masks. Returns ``{"n",
    "samples", "seed", "mask_seed", "image_size", "generator", "sfn", "entries": {name: {"method", "model",
    "options", "n", "buckets": {label: metrics}, "mean": metrics over buckets, "per_image": {label:
    {metric: [n values, 4 significant digits]}}}}}`` (the per-image values let :func:`add_comparisons`
    pair rows later, also rows added by another run)."""
    from tqdm.auto import tqdm

    for name, e in entries.items():
        if e.method not in METHODS:
            raise ValueError(f"entry {name!r}: unknown method {e.method!r}; choose from {sorted(METHODS)}")
    cache: dict = {}
    rows, info = {}, {}
    for name, e in tqdm(entries.items(), desc="inpainting benchmark", disable=not progress):
        method = build_method(e, G, sfn, cache)
        res = evaluate_inpainting(method, G, sfn, n=min(n, e.n or n), per_image=True, **kwargs)
        info = {k: res[k] for k in ("samples", "seed", "mask_seed")}
        buckets, images = res["buckets"], rounded(res["per_image"], 4)
        rows[name] = dict(method=e.method, model=e.model, options=e.options, n=res["n"], buckets=buckets,
                          mean=mean_over_buckets(buckets), per_image=images)  # fmt: skip
    return dict(n=n, **info, image_size=G.size, generator=str(generator), sfn=str(sfn_name), entries=rows)


def add_comparisons(result: dict, pairs: Sequence[tuple[str, str]]) -> dict:
    """``result`` with ``"comparisons": {"B vs A": {metric: interval}}`` added for each pair of row names
    ``(A, B)``: per metric of :data:`PER_IMAGE_KEYS`, each image's mean over buckets, then
    :func:`ganinv.stats.paired_bootstrap` over the images (95 % interval). Both rows need their per-image
    values (rows evaluated before those were stored cannot be paired)."""
    from ..stats import compare_rows

    def per_image(row: dict, key: str) -> torch.Tensor:  # [n]: the mean over buckets of each image
        return torch.tensor([values[key] for values in row["per_image"].values()]).mean(0)

    rows = result["entries"]
    for a, b in pairs:
        if (
            a in rows
            and b in rows
            and rows[a].get("per_image", {}).keys() != rows[b].get("per_image", {}).keys()
        ):
            raise ValueError(f"compare: {a!r} and {b!r} were scored on different hole-ratio buckets")
    found = compare_rows(rows, pairs, PER_IMAGE_KEYS, per_image)
    return {**result, "comparisons": {**result.get("comparisons", {}), **found}}


def merge_results(old: dict, new: dict) -> dict:
    """``old`` with the rows of ``new`` added (same names replaced); ValueError unless both used the same
    images, masks, generator and SFN."""
    keys = ("n", "samples", "seed", "mask_seed", "image_size", "generator", "sfn")
    return reconstruction.merge_results(old, new, keys, rows="entries")


def entries_from_specs(
    specs: Sequence[str] | None, model: str, optim_steps: int, optim_n: int | None
) -> dict[str, Entry]:
    """The ``--entry NAME=METHOD[@MODEL]`` options as rows (rows without ``@MODEL`` use ``model``; masked
    optimisation with ``optim_steps`` steps on ``optim_n`` images); none given: :func:`default_entries`."""
    if not specs:
        return default_entries(model, optim_steps, optim_n)
    entries = dict(parse_entry(spec, model) for spec in specs)
    for e in entries.values():
        if e.method == "optim":
            e.options, e.n = {"steps": optim_steps}, optim_n
    return entries


UNERASED_KEYS = ("psnr_unerased", "lpips_sfn_unerased")


def shown(values: Mapping, key: str):
    """``values[key]`` as tables and figures show it: None ("—", left out) for the unerased-pixel metrics of
    a method that keeps the known pixels by construction (biharmonic: PSNR at the cap, LPIPS-SFN 0), which are
    no measurement."""
    exact = values.get("psnr_unerased", 0.0) >= PSNR_CAP
    return None if exact and key in UNERASED_KEYS else values[key]


def markdown_table(result: dict, keys: Sequence[str] = TABLE_KEYS, bucket: str | None = None) -> str:
    """The rows of :func:`evaluate_entries` as a Markdown table (best value bold, "—" where :func:`shown`
    leaves a value out): averaged over the buckets, or for one ``bucket`` label (e.g. "h4")."""
    rows = {}
    for name, r in result["entries"].items():
        values = r["mean"] if bucket is None else r["buckets"][bucket]
        rows[name] = {"n": r["n"], **{k: shown(values, k) for k in values}}
    return "\n".join(reconstruction.best_bold_rows(rows, keys, LOWER_IS_BETTER))


def bucket_figure(result: dict, path: str | None = None, keys: Sequence[str] = (
        "fid_sfn", "diversity_lpips_sfn", "psnr_unerased", "seam_excess")):  # fmt: skip
    """One panel per metric against the mean hole ratio of each bucket, one line per row."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), constrained_layout=True)
    for i, (name, r) in enumerate(result["entries"].items()):
        # one style per row in every panel: 10 colours, then the same colours dashed, then dotted
        style = dict(color=f"C{i % 10}", linestyle=("-", "--", ":")[i // 10 % 3], marker="os^"[i // 10 % 3])
        for ax, k in zip(axes, keys):  # capped values left out
            points = [(b["hole_ratio"], shown(b, k)) for b in r["buckets"].values()]
            points = [(x, y) for x, y in points if y is not None]
            if points:
                ax.plot(*zip(*points), label=name, **style)
    for ax, k in zip(axes, keys):
        ax.set_xlabel("hole ratio")
        ax.set_title(k + (" (lower is better)" if LOWER_IS_BETTER[k] else " (higher is better)"), fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # outside: no line hidden
    if path:
        fig.savefig(path, dpi=110)
    return fig
