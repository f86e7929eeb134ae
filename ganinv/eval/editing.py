"""The editing benchmark: edits in W, W⁺ and F of every inversion method, scored against ground truth.

Each method inverts the same held-out SynthFaces (:func:`ganinv.eval.reconstruction.held_out`); its codes
are edited along the InterFaceGAN direction of each binary attribute (Shen et al., CVPR 2020, Sec. 2.2:
w' = w + α n, n the unit normal of the attribute's boundary in W) by :func:`ganinv.editing.apply_edit`: a W
edit for a code w, a W⁺ edit for w⁺, and for w⁺ with an F feature the rule of CLCAE Sec. 4 (FS / HFGI),
f̂ = f + G_f(ŵ⁺) − G_f(w⁺). Strengths α are given in units of the direction's ``std`` (σ of sampled w along
it). The SFN reads every factor of the unedited reconstruction and of the edit; because SynthFaces factors
are independent by construction, any change of a factor other than the edited one is **leakage**, a
measurable entanglement that real-face benchmarks can only estimate with attribute classifiers.

Per method × attribute × strength: ``target_change`` mean change of the attribute's P(1) read-out (signed),
``success`` fraction of images whose binary read-out (P > 0.5) ends on the side the edit pushes to (at
strength 0: keeps its side), ``leakage`` mean over the other 16 factors of the per-factor change (binary and
categorical: 1 when the read-out class changes; continuous: |Δ| / (high − low), the conventions of
:func:`ganinv.eval.reconstruction.factor_errors`), ``identity`` ID-SFN of the edit with the *input* and
``identity_to_reconstruction`` with the unedited reconstruction. Per method also the reconstruction's fidelity
and a ``summary`` at the largest |strength| (the axes of :func:`tradeoff_figure`), and ``realism``: how far
the reconstructions and the edits at the largest |strength| (all attributes, both signs) are from clean faces,
as inversion papers report FID of edits: FID-SFN, FID-SFN-texture and the mean k-NN realism-SFN-texture
against held-out SynthFaces of another seed (:func:`ganinv.eval.reconstruction.realism_columns`).

``ganinv train directions`` writes the directions (:func:`fit_directions`); ``ganinv eval editing`` writes
``figures/04_editing.json`` and the fidelity / editability scatter.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .. import editing as E
from ..common import EVAL_SEED
from ..inversion import invert
from ..metrics import id_similarity, lpips_features, mse
from .reconstruction import (
    REFERENCE_N,
    REFERENCE_SEED,
    Entry,
    check_entries,
    entry_encoder,
    factor_changes,
    held_out,
    realism_columns,
    realism_features,
    realism_reference,
)

# In units of each direction's std. That std is the spread of *all* sampled w along the normal; most samples
# sit far from the boundary on the majority side, so flipping an attribute takes several std (synthfaces64,
# 64 generated faces: glasses flipped for 56% at 4 std, 91% at 8 std; eyes_closed 56% / 100%).
STRENGTHS = (-8.0, -4.0, 4.0, 8.0)
EDIT_KEYS = ("target_change", "success", "leakage", "identity", "identity_to_reconstruction")
FIDELITY_KEYS = ("mse", "lpips_sfn", "id_sfn")


def fit_directions(
    G: nn.Module,
    reader: E.Reader,
    n: int = 4000,
    components: int = 10,
    seed: int = 0,
    pca_n: int = 10000,
    ambiguous: float = 0.2,
    layers: tuple[int, int] | None = None,
    generator: str | None = None,
    log: Callable[[str], None] = print,
) -> E.Directions:
    """InterFaceGAN directions of every attribute ``reader`` returns (``n`` samples) followed by the first
    ``components`` GANSpace PCs (``pca_n`` samples; edits on w⁺ ``layers`` [start, end), None = all; one
    range for all PCs, as :class:`~ganinv.widgets.LatentExplorer` assumes). An attribute with too few
    confident samples of one class is skipped with a warning (``log``); ValueError when nothing is left."""
    if n < 2 or components < 0 or pca_n < 2:
        raise ValueError(f"need n >= 2, pca_n >= 2 and components >= 0; got {n}, {pca_n}, {components}")
    w, probs = E.sample_labelled(G, n, reader, seed)  # [n, D], {name: [n]}
    out = E.Directions(generator=generator, generator_config=G.config)
    for name, p in probs.items():
        try:  # one call per attribute: the same seeded split as fitting all of them at once
            d = E.fit_interfacegan(w, {name: p}, ambiguous=ambiguous, seed=seed)[name]
        except ValueError as e:
            log(f"warning: skipped {e}")
            continue
        out[name] = d
        log(f"{name:>12}  interfacegan  held-out accuracy {d.accuracy:.3f}  std {d.std:.3f}")
    if components:
        for name, d in E.ganspace_directions(G, pca_n, components, seed).items():
            out[name] = d.with_layers(*layers) if layers is not None else d
            log(f"{name:>12}  ganspace      explained variance {d.explained_variance:.3f}  std {d.std:.3f}")
    if not out:
        raise ValueError("no direction could be fitted (every attribute was skipped and components=0)")
    return out


@torch.no_grad()
def edit_scores(
    G: nn.Module,
    sfn: nn.Module,
    codes: Mapping,
    x: torch.Tensor,
    direction: E.Direction | torch.Tensor,
    strength: float,
    attribute: str,
    reference: dict | None = None,
) -> dict:
    """Per-image scores ``{EDIT_KEYS..., "changes": {factor: [N]}, "read": {factor: [N]}, "image"}`` of one
    edit (``strength`` in w units) of the inversion ``codes`` of inputs ``x`` [N, 3, S, S]; ``read`` is the
    SFN read-out of the edited image ``image`` [N, 3, S, S]; ``reference`` = ``{"image", "read"}`` of the
    unedited reconstruction (computed when None)."""
    if reference is None:
        reference = reference_read(G, sfn, codes)
    image = E.apply_edit(G, codes, direction, strength)["image"].clamp(-1, 1)  # [N, 3, S, S]
    read = sfn.attributes(image)
    p0, p1 = reference["read"][attribute].float(), read[attribute].float()
    side = (p1 > 0.5) == ((p0 > 0.5) if strength == 0 else strength > 0)
    changes = factor_changes(reference["read"], read)
    leak = torch.stack([v for k, v in changes.items() if k != attribute]).mean(0)
    changes.pop(attribute)
    return {"target_change": p1 - p0, "success": side.float(), "leakage": leak,
            "identity": id_similarity(image, x, sfn),
            "identity_to_reconstruction": id_similarity(image, reference["image"], sfn),
            "changes": changes, "read": read, "image": image}  # fmt: skip


def reference_read(G: nn.Module, sfn: nn.Module, codes: Mapping) -> dict:
    """The unedited reconstruction, rendered through the edit path (equal to an edit at strength 0)."""
    zero = torch.zeros(G.style_dim, device=G.w_avg.device)
    image = E.apply_edit(G, codes, zero, 0.0)["image"].clamp(-1, 1)
    return {"image": image, "read": sfn.attributes(image)}


def _space(codes: Mapping) -> str:
    return "F" if codes.get("f") is not None else "W+" if codes.get("w_plus") is not None else "W"


def _mean(values: list[torch.Tensor]) -> float:
    return float(torch.cat(values).double().mean())


def _attributes(directions: Mapping[str, E.Direction], sfn, attributes: Sequence[str] | None) -> list[str]:
    binary = list(sfn.cfg.binary)
    if attributes is None:
        names = [k for k, d in directions.items() if k in binary and d.kind == "interfacegan"]
        if not names:
            raise ValueError(
                f"no InterFaceGAN direction of an SFN binary attribute {binary} in the directions"
            )
        return names
    names = list(attributes)
    if not names:
        raise ValueError("attributes: give at least one (or None for every binary attribute)")
    if bad := [a for a in names if a not in binary]:
        raise ValueError(f"unknown attribute(s) {bad}: the SFN reads the binary attributes {binary}")
    if missing := [a for a in names if a not in directions]:
        raise ValueError(f"no direction for attribute(s) {missing}; the directions hold {list(directions)}")
    return names


def evaluate_editing(
    entries: Mapping[str, Entry],
    G: nn.Module,
    sfn: nn.Module,
    directions: Mapping[str, E.Direction],
    attributes: Sequence[str] | None = None,
    strengths: Sequence[float] = STRENGTHS,
    n: int = 200,
    seed: int = EVAL_SEED,
    batch_size: int = 50,
    progress: bool = True,
    nonlinear: Mapping[str, E.Direction] | None = None,
    editors: Sequence[str] = ("linear",),
    generated: int = 0,
    reference_n: int = REFERENCE_N,
) -> dict:
    """Invert the first ``n`` held-out SynthFaces of ``seed`` with every entry (an entry's own ``n`` may cut
    that), edit each attribute's direction at every strength (× its ``std``) and score it (module docstring).

    ``editors``: "linear" (``directions``) and / or "non-linear" (``nonlinear``, a
    :class:`~ganinv.nonlinear_editing.NonlinearDirections`); a row's name is the entry's name for the linear
    editor and ``"<name> · non-linear"`` for the other (each row says its ``"editor"``). ``generated``: also
    score that many generated faces (w of seed ``seed``, rows ``"generated"`` / ``"generated · non-linear"``,
    reconstruction exact by construction); the entries may then be empty.

    Returns ``{"n", "seed", "image_size", "strengths", "attributes", "directions": {attr: {"kind", "std",
    "accuracy"}}, "methods": {name: {"method", "options", "n", "space", "reconstruction": {mse, lpips_sfn,
    id_sfn}, "edits": {attr: {"by_strength": [{"strength", <EDIT_KEYS>}, ...], "leakage_by_factor":
    {factor: mean over strengths}}}, "summary": {"strength", "fidelity", "editability", "target_change",
    "leakage", "identity", "identity_to_reconstruction"}, "realism": {"reconstruction" | "edits":
    {"fid_sfn", "fid_sfn_texture", "realism_sfn_texture"}, "reference": {"seed", "n"}}}}}``; ``summary``
    averages the rows with the largest |strength| over attributes and both signs (``target_change`` signed
    towards the edit); ``realism`` scores the unedited reconstructions and the edits at the largest |strength|
    against ``reference_n`` held-out SynthFaces of :data:`~ganinv.eval.reconstruction.REFERENCE_SEED`."""
    strengths = [float(s) for s in strengths]
    if not strengths or not all(math.isfinite(s) for s in strengths):
        raise ValueError(f"strengths: need at least one finite number, got {strengths}")
    if len(set(strengths)) != len(strengths):
        raise ValueError(f"strengths must be distinct, got {strengths}")
    if not editors or any(e not in EDITORS for e in editors):
        raise ValueError(f"editors: choose one or more of {list(EDITORS)}, got {list(editors)}")
    if "non-linear" in editors and nonlinear is None:
        raise ValueError("the non-linear editor needs non-linear directions (`nonlinear=`)")
    if not entries and generated < 1:
        raise ValueError("nothing to score: give entries or generated >= 1")
    check_entries(entries, n, batch_size)
    names = _attributes(directions, sfn, attributes)
    dirs = {"linear": directions, "non-linear": nonlinear}
    if "non-linear" in editors and (missing := [a for a in names if a not in nonlinear]):
        raise ValueError(f"no non-linear direction for attribute(s) {missing}; they hold {list(nonlinear)}")
    dev, size = G.w_avg.device, G.size
    x_all, _ = held_out(n, size, seed) if entries else (None, None)  # [n, 3, S, S]
    reference = realism_reference(sfn, size, reference_n)
    top = max(abs(s) for s in strengths)
    result: dict = {"n": n, "seed": seed, "image_size": size, "strengths": strengths, "attributes": names,
                    "directions": {a: _meta(directions[a]) for a in names}, "methods": {}}  # fmt: skip
    if "non-linear" in editors:
        result["nonlinear_directions"] = {a: _meta(nonlinear[a]) for a in names}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = sum(min(n, e.n or n) for e in entries.values()) + generated
        bar = tqdm(total=total, desc="editing", unit="img")
    jobs = [(name, entry) for name, entry in entries.items()] + ([("generated", None)] if generated else [])
    for name, entry in jobs:
        m = min(n, entry.n or n) if entry is not None else generated
        encoder = entry_encoder(entry, dev) if entry is not None else None
        fid: dict[str, list] = {k: [] for k in FIDELITY_KEYS}
        rows = {(e, a, s): {k: [] for k in EDIT_KEYS} for e in editors for a in names for s in strengths}
        by_factor: dict[tuple, dict[str, list]] = {(e, a): {} for e in editors for a in names}
        feats: dict[str, dict[str, list]] = {e: {} for e in (*editors, "reconstruction")}
        space = "W"
        w_gen = E.sample_w(G, m, seed) if entry is None else None  # [m, D]
        for start in range(0, m, batch_size):
            stop = min(start + batch_size, m)
            if entry is None:  # a generated face: its code is exact, its image is G(w)
                codes = {"w": w_gen[start:stop].to(dev), "w_plus": None, "f": None}
                with torch.no_grad():
                    x = G.synthesis(codes["w"], noise_mode="const").clamp(-1, 1)
            else:
                x = x_all[start:stop].to(dev)
                res = invert(x, entry.method, generator=G, encoder=encoder, **entry.options)
                codes = {"w": res.w, "w_plus": res.w_plus, "f": res.f}
            space = _space(codes)
            with torch.no_grad():
                ref = reference_read(G, sfn, codes)
                fid["mse"].append(mse(ref["image"], x).cpu())
                fid["lpips_sfn"].append(lpips_features(ref["image"], x, sfn).cpu())
                fid["id_sfn"].append(id_similarity(ref["image"], x, sfn).cpu())
                _collect(feats["reconstruction"], realism_features(sfn, ref["image"]))
            for e in editors:
                for a in names:
                    d = dirs[e][a]
                    for s in strengths:
                        scores = edit_scores(G, sfn, codes, x, d, s * d.std, a, ref)
                        image = scores.pop("image")
                        if abs(s) == top:
                            _collect(feats[e], realism_features(sfn, image))
                        for k, v in scores.pop("changes").items():
                            by_factor[(e, a)].setdefault(k, []).append(v.cpu())
                        for k in EDIT_KEYS:
                            rows[(e, a, s)][k].append(scores[k].cpu())
            if bar is not None:
                bar.update(x.shape[0])
                bar.set_postfix(method=name)
        recon = {k: _mean(v) for k, v in fid.items()}
        recon_realism = _realism(reference, feats["reconstruction"])
        for e in editors:
            edits = {a: {"by_strength": [{"strength": s, **{k: _mean(rows[(e, a, s)][k]) for k in EDIT_KEYS}}
                                         for s in strengths],
                         "leakage_by_factor": {k: _mean(v) for k, v in by_factor[(e, a)].items()}}
                     for a in names}  # fmt: skip
            row = name if e == "linear" else f"{name} · non-linear"
            method = entry.method if entry is not None else "generated"
            options = dict(entry.options) if entry is not None else {}
            realism = {"reconstruction": recon_realism, "edits": _realism(reference, feats[e]),
                       "reference": {"seed": REFERENCE_SEED, "n": reference_n}}  # fmt: skip
            result["methods"][row] = {"method": method, "options": options, "n": m, "space": space,
                                      "editor": e, "reconstruction": recon, "edits": edits,
                                      "summary": _summary(edits, recon, strengths),
                                      "realism": realism}  # fmt: skip
    if bar is not None:
        bar.close()
    return result


def _collect(store: dict[str, list], features: dict[str, torch.Tensor]) -> None:
    for k, v in features.items():
        store.setdefault(k, []).append(v)


def _realism(reference: dict, store: dict[str, list]) -> dict:
    """FID-SFN, FID-SFN-texture and the mean realism-SFN-texture of the images whose features are in
    ``store``."""
    cols = realism_columns(reference, {k: torch.cat(v) for k, v in store.items()})
    cols["realism_sfn_texture"] = float(cols["realism_sfn_texture"].double().mean())
    return cols


EDITORS = ("linear", "non-linear")  # InterFaceGAN directions; ganinv.nonlinear_editing
MERGE_KEYS = ("n", "seed", "image_size", "strengths", "attributes", "generator", "sfn")


def _meta(d) -> dict:
    return {"kind": d.kind, "std": float(d.std), "accuracy": d.accuracy}


def merge_results(old: dict, new: dict) -> dict:
    """``old`` with the method rows of ``new`` added (same names replaced) and, when ``new`` has them, its
    non-linear directions' metadata; ValueError unless both were scored on the same images, strengths,
    attributes, generator and SFN (``ganinv eval editing --add``)."""
    if differ := [k for k in MERGE_KEYS if old.get(k) != new.get(k)]:
        raise ValueError(
            "cannot add rows scored differently: "
            + ", ".join(f"{k} {old.get(k)!r} vs {new.get(k)!r}" for k in differ)
        )
    out = {**old, "methods": {**old["methods"], **new["methods"]}}
    if "nonlinear_directions" in new:
        out["nonlinear_directions"] = new["nonlinear_directions"]
    return out


def attribute_table(result: dict, methods: Sequence[str], strength: float | None = None) -> dict:
    """Per attribute and method, the scores at ±``strength`` (default: the largest |strength|), both signs
    averaged (``target_change`` signed towards the edit): ``{attr: {method: {success, target_change,
    leakage, identity}}}``."""
    top = max(abs(s) for s in result["strengths"]) if strength is None else abs(float(strength))
    out: dict = {}
    for a in result["attributes"]:
        for m in methods:
            rows = [r for r in result["methods"][m]["edits"][a]["by_strength"] if abs(r["strength"]) == top]
            if not rows:
                raise ValueError(f"no rows at strength ±{top:g} (strengths {result['strengths']})")
            out.setdefault(a, {})[m] = {
                "success": sum(r["success"] for r in rows) / len(rows),
                "target_change": sum(math.copysign(1.0, r["strength"]) * r["target_change"] for r in rows)
                / len(rows),
                "leakage": sum(r["leakage"] for r in rows) / len(rows),
                "identity": sum(r["identity"] for r in rows) / len(rows),
            }
    return out


def _summary(edits: dict, recon: dict, strengths: list[float]) -> dict:
    top = max(abs(s) for s in strengths)
    picked = [r for e in edits.values() for r in e["by_strength"] if abs(r["strength"]) == top]
    out = {"strength": top, "fidelity": recon["id_sfn"]}
    out["editability"] = sum(r["success"] for r in picked) / len(picked)
    signed = [
        math.copysign(1.0, r["strength"]) * r["target_change"] if r["strength"] else 0.0 for r in picked
    ]
    out["target_change"] = sum(signed) / len(picked)
    for k in ("leakage", "identity", "identity_to_reconstruction"):
        out[k] = sum(r[k] for r in picked) / len(picked)
    return out


def tradeoff_figure(result: dict, path: str | os.PathLike | None = None, y: str = "editability"):
    """Fidelity (ID-SFN of the unedited reconstruction with the input) against ``y`` ("editability": success
    rate, or "target_change": mean ΔP towards the edit) at the largest |strength|, one labelled point per
    method; saved atomically to ``path`` when given. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    from ..viz import save_figure

    if y not in ("editability", "target_change"):
        raise ValueError(f"y must be 'editability' or 'target_change', got {y!r}")
    methods = result["methods"]
    if not methods:
        raise ValueError("the result holds no method to plot")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    markers = {"W": "o", "W+": "s", "F": "^"}
    for name, r in methods.items():  # a legend, not labels at the points: close methods would overlap
        sx, sy = r["summary"]["fidelity"], r["summary"][y]
        ax.scatter([sx], [sy], s=36, marker=markers.get(r["space"], "o"), label=f"{name} ({r['space']})")
    ax.legend(
        fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="method (space)", title_fontsize=8
    )
    top = max(abs(s) for s in result["strengths"])
    ax.set_xlabel("fidelity: ID-SFN(reconstruction, input)")
    what = "edit success rate" if y == "editability" else "ΔP(attribute) towards the edit"
    ax.set_ylabel(f"editability: {what} at ±{top:g}σ")
    ax.set_title(f"fidelity vs editability ({len(result['attributes'])} attributes, n={result['n']})")
    ax.grid(alpha=0.3)
    if path is not None:
        save_figure(fig, path)
    return fig


def markdown_table(result: dict) -> str:
    """One row per method: its space, reconstruction fidelity, the ``summary`` edit scores and the FID-SFN /
    FID-SFN-texture of the edits ("—" for rows scored before those columns existed)."""
    top = max(abs(s) for s in result["strengths"])
    head = ["method", "space", "n", "ID-SFN", "MSE", "LPIPS-SFN", f"success ±{top:g}σ", "ΔP", "leakage",
            "ID (edit, input)", "FID-SFN (edits)", "FID-SFN-texture (edits)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, r in result["methods"].items():
        rec, s = r["reconstruction"], r["summary"]
        edits = r.get("realism", {}).get("edits", {})
        cells = [rec["id_sfn"], rec["mse"], rec["lpips_sfn"], s["editability"], s["target_change"],
                 s["leakage"], s["identity"], edits.get("fid_sfn"), edits.get("fid_sfn_texture")]  # fmt: skip
        text = ["—" if c is None else f"{c:.4g}" for c in cells]
        lines.append(f"| {name} | {r['space']} | {r['n']} | " + " | ".join(text) + " |")
    return "\n".join(lines)
