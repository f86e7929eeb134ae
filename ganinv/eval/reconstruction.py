"""The reconstruction benchmark: every inversion method on the same held-out SynthFaces images.

CLCAE (CVPR 2023) compares inversion methods by reconstruction fidelity (its Tab. 1: MSE, LPIPS, SSIM, ID);
this module does the same in the embedded world and adds what only a synthetic world can measure, the
**factor error**: the bundled SFN reads every factor of the reconstruction and the read-out is compared with
the *ground truth* the renderer drew the input from. The SFN's error on the inputs themselves is reported as
the floor (``"input"``), so a method's factor error above it is what the inversion lost.

Factor error of one image, per factor (all in [0, 1]): binary attributes and the categorical hair style
score 1 when the read-out class differs from the truth; continuous factors score ``|read - truth| / (high -
low)``. ``factor_error`` is their mean over the 17 factors.

**Realism** (inversion papers report FID of reconstructions and edits beside fidelity): every distance above
compares a reconstruction with its input, and none says "this does not look like a clean face". Three
columns do, each against a *reference* set of held-out SynthFaces of another seed (:data:`REFERENCE_SEED`,
never the evaluated inputs): ``fid_sfn`` (Fréchet distance of SFN embeddings, the FID-SFN of chapters 01 and
05), ``fid_sfn_texture`` (the same on the first SFN stages' texture statistics,
:class:`ganinv.fid.SFNTextureExtractor`) and ``realism_sfn_texture``, the per-image k-NN realism score of
Kynkäänniemi et al. (2019) on those statistics, z-scored by the reference (higher is more real). Both FIDs
grow as n shrinks: compare rows of equal ``n``. ``ganinv.eval.metric_battery`` measures which artefacts each
column sees.

``ganinv eval reconstruction`` writes ``figures/03_reconstruction.json`` with :func:`evaluate_reconstruction`;
notebook 03 shows the table (:func:`markdown_table`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..common import EVAL_SEED, rounded
from ..data import synthfaces as sf
from ..data.images import pool_to
from ..inversion import check_method, invert, resolve_encoder
from ..metrics import (
    SFNExtractor,
    SFNTextureExtractor,
    compute_features,
    fid,
    id_similarity,
    lpips_features,
    mse,
    psnr,
    realism_scores,
    ssim,
    summarize,
)

REALISM_KEYS = ("fid_sfn", "fid_sfn_texture", "realism_sfn_texture")
METRIC_KEYS = (
    "mse",
    "psnr",
    "ssim",
    "lpips_sfn",
    "id_sfn",
    "factor_error",
    *REALISM_KEYS,
    "seconds_per_image",
)
# kept per image for --compare
PER_IMAGE_KEYS = ("psnr", "ssim", "lpips_sfn", "id_sfn", "factor_error", "realism_sfn_texture")
LOWER_IS_BETTER = {"mse": True, "psnr": False, "ssim": False, "lpips_sfn": True, "id_sfn": False,
                   "factor_error": True, "fid_sfn": True, "fid_sfn_texture": True,
                   "realism_sfn_texture": False, "seconds_per_image": True}  # fmt: skip
REFERENCE_SEED = EVAL_SEED + 1  # SynthFaces seed of the realism reference set (disjoint from the inputs)
REFERENCE_N = 1000  # reference images of the realism columns


@dataclass
class Entry:
    """One row of the benchmark: an :func:`ganinv.inversion.invert` call.

    ``method`` one of :data:`ganinv.inversion.METHODS`; ``encoder`` a module, checkpoint path or bundled name
    (encoder methods; required for them); ``options`` further ``invert`` keywords
    (e.g. ``steps`` of the optimisation methods); ``n`` evaluate only the first ``n`` images (slow methods;
    None = all of them).
    """

    method: str
    encoder: object = None
    options: dict = field(default_factory=dict)
    n: int | None = None


def check_entries(entries: Mapping[str, Entry], n: int, batch_size: int) -> None:
    """ValueError naming the problem unless ``n`` and ``batch_size`` are >= 1 and every entry has a known
    method and an ``n`` that is None or >= 1 (shared by the reconstruction and editing benchmarks)."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    for name, entry in entries.items():
        check_method(entry.method)
        if entry.n is not None and entry.n < 1:
            raise ValueError(f"entry {name!r}: n must be >= 1 or None, got {entry.n}")


def held_out(n: int, size: int, seed: int = EVAL_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` SynthFaces of ``seed`` (never training data): images [n, 3, size, size] in [-1, 1] and their
    ground-truth factors [n, len(FACTORS)] in :data:`~ganinv.data.synthfaces.FACTORS` order."""
    batch = sf.SynthFaces(size=size, seed=seed, length=n).get_batch(range(n))
    return batch["image"].float(), batch["factors"].float()


@torch.no_grad()
def realism_reference(
    sfn: nn.Module, size: int, n: int = REFERENCE_N, seed: int = REFERENCE_SEED, batch_size: int = 250
) -> dict[str, torch.Tensor]:
    """SFN features of the realism reference: ``n`` held-out SynthFaces of ``seed`` (by default
    :data:`REFERENCE_SEED`, so never the evaluated inputs). ``{"embed": [n, D], "texture": [n, D_t]}``."""
    if n < 4:
        raise ValueError(
            f"realism_reference: need n >= 4 reference images (k-NN balls, covariances), got {n}"
        )
    dev = next(sfn.parameters()).device
    images, _ = held_out(n, size, seed)  # [n, 3, S, S]
    return realism_features(sfn, images.to(dev), batch_size)


@torch.no_grad()
def realism_features(sfn: nn.Module, images: torch.Tensor, batch_size: int = 250) -> dict[str, torch.Tensor]:
    """``{"embed": [N, D], "texture": [N, D_t]}``: the features of the realism columns (CPU, float32)."""
    extractors = {"embed": SFNExtractor(sfn), "texture": SFNTextureExtractor(sfn)}
    return {k: compute_features(images, e, batch_size, progress=False) for k, e in extractors.items()}


def standardized(reference: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature sets ``[N, D]`` z-scored by the reference's per-dimension mean and std, so that every
    texture statistic counts alike in the k-NN distances of the realism score (the raw ones differ in scale
    by orders of magnitude, and the largest would decide alone)."""
    mu, sd = reference.mean(dim=0), reference.std(dim=0).clamp(min=1e-8)
    return (reference - mu) / sd, (features - mu) / sd


def realism_columns(reference: dict[str, torch.Tensor], features: dict[str, torch.Tensor]) -> dict:
    """The realism columns of one set of images from its :func:`realism_features` against the reference's:
    ``{"fid_sfn": float, "fid_sfn_texture": float, "realism_sfn_texture": [N]}``; the FIDs are None for a
    single image (no covariance)."""
    many = features["embed"].shape[0] >= 2
    return {
        "fid_sfn": fid(features["embed"], reference["embed"]) if many else None,
        "fid_sfn_texture": fid(features["texture"], reference["texture"]) if many else None,
        "realism_sfn_texture": realism_scores(*standardized(reference["texture"], features["texture"])),
    }


def factor_changes(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor]) -> dict:
    """``{factor: [N]}`` normalised difference between two sets of factor values (ground truth or
    ``SFN.attributes`` read-outs), each in [0, 1]: binary 1 when the side of 0.5 differs, categorical 1 when
    the class differs, continuous ``|Δ| / (high − low)``."""
    out = {}
    for f in sf.FACTORS:
        a, b = before[f.name].float(), after[f.name].float()
        if f.kind == "binary":
            out[f.name] = ((a > 0.5) != (b > 0.5)).float()
        elif f.kind == "categorical":
            out[f.name] = (a.round() != b.round()).float()
        else:
            out[f.name] = (b - a).abs() / (f.high - f.low)
    return out


@torch.no_grad()
def factor_errors(sfn: nn.Module, images: torch.Tensor, factors: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{factor: [N]}`` per-image errors of the SFN read-out of ``images`` [N, 3, S, S] against the true
    ``factors`` [N, len(FACTORS)] (see the module docstring), plus ``"factor_error"``, their mean."""
    if factors.ndim != 2 or factors.shape != (images.shape[0], len(sf.FACTORS)):
        raise ValueError(
            f"factors must be [N, {len(sf.FACTORS)}] for {images.shape[0]} images, got {list(factors.shape)}"
        )
    factors = factors.to(images.device)
    truth = {f.name: factors[:, i] for i, f in enumerate(sf.FACTORS)}
    errors = factor_changes(truth, sfn.attributes(images))
    errors["factor_error"] = torch.stack(list(errors.values())).mean(0)
    return errors


@torch.no_grad()
def image_scores(image: torch.Tensor, x: torch.Tensor, factors: torch.Tensor, sfn: nn.Module) -> dict:
    """Per-image metric tensors of reconstructions ``image`` against inputs ``x`` (both [N, 3, S, S])."""
    errors = factor_errors(sfn, image, factors)
    return {
        "mse": mse(image, x),
        "psnr": psnr(image, x),
        "ssim": ssim(image, x),
        "lpips_sfn": lpips_features(image, x, sfn),
        "id_sfn": id_similarity(image, x, sfn),
        "factor_error": errors.pop("factor_error"),
        **{f"factor_error/{k}": v for k, v in errors.items()},
    }


def _finish(values: dict[str, list[torch.Tensor]], n: int) -> dict:
    out = summarize({k: torch.cat(v).float() for k, v in values.items() if "/" not in k})
    out["factor_error_by_factor"] = {
        k.split("/", 1)[1]: float(torch.cat(v).float().mean()) for k, v in values.items() if "/" in k
    }
    return {"n": n, **out}


def evaluate_reconstruction(
    entries: Mapping[str, Entry],
    G: nn.Module,
    sfn: nn.Module,
    n: int = 1000,
    seed: int = EVAL_SEED,
    batch_size: int = 100,
    progress: bool = True,
    per_image: bool = False,
    reference_n: int = REFERENCE_N,
) -> dict:
    """Score every entry on the first ``n`` held-out SynthFaces of ``seed`` (an entry's own ``n`` may cut
    that). Reconstructions are clamped to [-1, 1] as saved images would be. Returns ``{"n", "seed",
    "image_size", "input": the SFN floor, "methods": {name: {"method", "n", <METRIC_KEYS>, "*_std",
    "factor_error_by_factor"}}}``; with ``per_image`` each row also holds ``"per_image": {metric: [n values,
    4 significant digits]}`` for :data:`PER_IMAGE_KEYS`, which :func:`add_comparisons` pairs.

    The realism columns (:data:`REALISM_KEYS`, module docstring) compare each row's reconstructions with
    ``reference_n`` held-out SynthFaces of :data:`REFERENCE_SEED`, recorded in each row as
    ``"realism_reference": {"seed", "n"}`` (``--add`` keeps old rows, which may lack these columns)."""
    check_entries(entries, n, batch_size)
    dev = G.w_avg.device
    size = G.size
    x_all, factors_all = held_out(n, size, seed)
    floor: dict[str, list] = {}
    for s in range(0, n, batch_size):
        x, fac = x_all[s : s + batch_size].to(dev), factors_all[s : s + batch_size]
        for k, v in factor_errors(sfn, x, fac).items():
            floor.setdefault(k if k == "factor_error" else f"factor_error/{k}", []).append(v.cpu())
    reference = realism_reference(sfn, size, reference_n)
    result: dict = {"n": n, "seed": seed, "image_size": size, "input": _finish(floor, n), "methods": {}}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = sum(min(n, e.n or n) for e in entries.values())
        bar = tqdm(total=total, desc="reconstruction", unit="img")
    for name, entry in entries.items():
        m = min(n, entry.n or n)
        encoder = entry_encoder(entry, dev)
        values: dict[str, list] = {}
        feats: dict[str, list] = {"embed": [], "texture": []}
        seconds = 0.0
        for s in range(0, m, batch_size):
            x = x_all[s : min(s + batch_size, m)].to(dev)
            fac = factors_all[s : min(s + batch_size, m)]
            start = time.perf_counter()
            res = invert(x, entry.method, generator=G, encoder=encoder, **entry.options)
            seconds += time.perf_counter() - start
            image = pool_to(res.image, size).clamp(-1, 1)
            for k, v in image_scores(image, x, fac, sfn).items():
                values.setdefault(k, []).append(v.cpu())
            for k, v in realism_features(sfn, image).items():
                feats[k].append(v)
            if bar is not None:
                bar.update(x.shape[0])
                bar.set_postfix(method=name)
        realism = realism_columns(reference, {k: torch.cat(v) for k, v in feats.items()})
        values["realism_sfn_texture"] = [realism.pop("realism_sfn_texture")]
        row = _finish(values, m)
        row.update(realism, realism_reference={"seed": REFERENCE_SEED, "n": reference_n})
        row["seconds_per_image"] = seconds / m
        if per_image:
            row["per_image"] = rounded({k: torch.cat(values[k]).tolist() for k in PER_IMAGE_KEYS}, 4)
        result["methods"][name] = {"method": entry.method, **row, "options": dict(entry.options)}
    if bar is not None:
        bar.close()
    return result


def entry_encoder(entry: Entry, device) -> nn.Module | None:
    """The loaded encoder of an encoder method's entry (None for the optimisation methods); a clear error
    when an encoder method has none."""
    return None if entry.method.startswith("optim") else resolve_encoder(entry.method, entry.encoder, device)


def reconstruction_grid(entries: Mapping[str, Entry], G: nn.Module, n_show: int = 6, seed: int = EVAL_SEED):
    """The first ``n_show`` held-out faces through every entry, one row of images and one of error maps each
    (:func:`ganinv.viz.ablation_grid`): the picture beside a benchmark's numbers."""
    from ..viz import ablation_grid

    dev = next(G.parameters()).device
    x, _ = held_out(n_show, G.size, seed)
    outputs = {}
    with torch.no_grad():
        for name, entry in entries.items():
            encoder = entry_encoder(entry, dev)
            res = invert(x.to(dev), entry.method, generator=G, encoder=encoder, **entry.options)
            outputs[name] = pool_to(res.image, G.size).clamp(-1, 1).cpu()
    return ablation_grid(x, outputs, col_titles=[f"held-out {i}" for i in range(n_show)])


def default_entries(
    optim_steps: int = 300, optim_n: int | None = 100, encoder: object = "synthfaces64"
) -> dict[str, Entry]:
    """Every method of :data:`~ganinv.inversion.METHODS`, the encoder methods with ``encoder`` (a bundled
    name, a path or a module); the optimisation methods with ``optim_steps`` steps on the first ``optim_n``
    images (they cost seconds per image)."""
    entries = {}
    for method in ("optim-w", "optim-w+"):
        entries[method] = Entry(method, options={"steps": optim_steps}, n=optim_n)
    for method in ("psp", "e4e", "clcae-w", "clcae-w+", "clcae-f"):
        entries[method] = Entry(method, encoder)
    return entries


def parse_entry(spec: str) -> tuple[str, Entry]:
    """``NAME=METHOD[@ENCODER]`` (the ``--entry`` option) -> (NAME, Entry); ValueError explains the form."""
    name, sep, rest = spec.partition("=")
    method, _, encoder = rest.partition("@")
    if not sep or not name or not method:
        raise ValueError(f"--entry {spec!r}: expected NAME=METHOD[@ENCODER], e.g. 'F=clcae-f@runs/clcae.pt'")
    check_method(method)
    if encoder and method.startswith("optim"):
        raise ValueError(f"--entry {spec!r}: method {method!r} takes no encoder")
    return name, Entry(method, encoder or None)


def add_comparisons(result: dict, pairs: Sequence[tuple[str, str]]) -> dict:
    """``result`` with ``"comparisons": {"B vs A": {metric: interval}}`` for each pair of row names ``(A,
    B)``: the paired difference B - A over the held-out images of each metric of :data:`PER_IMAGE_KEYS`,
    with its 95 % bootstrap interval (:func:`ganinv.stats.paired_bootstrap`). Both rows need per-image
    values (:func:`evaluate_reconstruction` with ``per_image=True``)."""
    from ..stats import compare_rows

    found = compare_rows(result["methods"], pairs, PER_IMAGE_KEYS, lambda row, key: row["per_image"][key])
    return {**result, "comparisons": {**result.get("comparisons", {}), **found}}


MERGE_KEYS = ("n", "seed", "image_size", "generator", "sfn")


def merge_results(old: dict, new: dict, keys: Sequence[str] = MERGE_KEYS, rows: str = "methods") -> dict:
    """``old`` with the rows (``old[rows]``) of ``new`` added, same names replaced; ValueError unless both
    agree on every setting in ``keys`` (default: the same held-out images, generator and SFN). Shared by
    the reconstruction and inpainting benchmarks' ``--add``."""
    if differ := [k for k in keys if old.get(k) != new.get(k)]:
        raise ValueError(
            "cannot add rows scored differently: "
            + ", ".join(f"{k} {old.get(k)!r} vs {new.get(k)!r}" for k in differ)
        )
    merged = {**old, rows: {**old[rows], **new[rows]}}
    if comparisons := {**old.get("comparisons", {}), **new.get("comparisons", {})}:
        merged["comparisons"] = comparisons
    return merged


def entries_from_specs(
    specs: Sequence[str] | None, optim_steps: int, optim_n: int | None, encoder: object = None
) -> dict[str, Entry]:
    """The ``--entry NAME=METHOD[@ENCODER]`` options of the benchmark commands as entries (the optimisation
    methods with ``optim_steps`` steps on ``optim_n`` images; encoder methods without ``@ENCODER`` get
    ``encoder``, e.g. the generator's bundled name); none given: :func:`default_entries`."""
    if not specs:
        return default_entries(optim_steps, optim_n, encoder)
    entries = {}
    for spec in specs:
        name, entry = parse_entry(spec)
        if entry.method.startswith("optim"):
            entry.options, entry.n = {"steps": optim_steps}, optim_n
        elif entry.encoder is None:
            entry.encoder = encoder
        entries[name] = entry
    return entries


def best_bold_rows(
    rows: Mapping[str, Mapping], keys: Sequence[str], lower_is_better: Mapping[str, bool]
) -> list[str]:
    """Markdown table lines (header, rule, one row per name with its ``n``) of ``rows`` {name: {"n", key:
    value}}, the best value of every column in bold (shared by the reconstruction and inpainting tables). A
    value of None (not meaningful for that row) or a column the row lacks (e.g. rows scored before the column
    existed) is shown as "—" and takes no part in the ranking."""
    best = {}
    rows = {name: {**r, **{k: r.get(k) for k in keys}} for name, r in rows.items()}
    for k in keys:
        vals = [r[k] for r in rows.values() if r[k] is not None]
        best[k] = (min(vals) if lower_is_better[k] else max(vals)) if vals else None
    lines = ["| method | n | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name, r in rows.items():
        cells = [
            "—" if r[k] is None else f"**{r[k]:.4g}**" if r[k] == best[k] else f"{r[k]:.4g}" for k in keys
        ]
        lines.append(f"| {name} | {r['n']} | " + " | ".join(cells) + " |")
    return lines


def markdown_table(result: dict, keys: tuple[str, ...] = METRIC_KEYS) -> str:
    """The ``methods`` of a :func:`evaluate_reconstruction` result as a Markdown table (best value bold),
    with the SFN floor of the factor error as the last row."""
    lines = best_bold_rows(result["methods"], keys, LOWER_IS_BETTER)
    floor = ["—"] * len(keys)
    floor[keys.index("factor_error")] = f"{result['input']['factor_error']:.4g}"
    lines.append(f"| input (SFN floor) | {result['n']} | " + " | ".join(floor) + " |")
    return "\n".join(lines)


def results_figure(result: dict, keys: tuple[str, ...] = ("lpips_sfn", "factor_error")):
    """Horizontal bars of ``keys`` (lower is better) for every method of a reconstruction benchmark: CLCAE and
    its ablations in blue, the baselines (pSp, e4e, optimisation) in grey, and the SFN's factor error on the
    inputs themselves as the floor where it applies."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows, names = result["methods"], list(result["methods"])
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 0.28 * len(names) + 1.4), sharey=True)
    axes = [axes] if len(keys) == 1 else list(axes)
    for ax, key in zip(axes, keys):
        ax.barh(
            names,
            [rows[n][key] for n in names],
            color=["C0" if n.startswith("clcae") else "C7" for n in names],
        )
        ax.set(title=f"{key} (lower is better)", xlabel=key)
        floor = result.get("input", {}).get(key)
        if isinstance(floor, float):
            ax.axvline(floor, color="k", ls="--", lw=1)
    axes[0].invert_yaxis()
    handles = [Patch(color="C0", label="CLCAE and its ablations"), Patch(color="C7", label="baselines")]
    if any(isinstance(result.get("input", {}).get(k), float) for k in keys):
        handles.append(
            plt.Line2D([], [], color="k", ls="--", lw=1, label="SFN floor (the inputs themselves)")
        )
    fig.legend(
        handles=handles, loc="lower center", ncol=len(handles), frameon=False, bbox_to_anchor=(0.5, -0.02)
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
