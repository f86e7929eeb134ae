"""Held-out evaluation of SFN, the SynthFaces feature network: attribute accuracy and R^2 against the
renderer's ground truth, and identity retrieval between a face and its positive (``ganinv eval sfn``; the SFN
trainer runs it at the end of a run and writes ``eval.json``)."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..common import EVAL_SEED, write_json
from ..data import synthfaces as sf
from ..data.identity import IDENTITY_FACTORS, NUISANCE_FACTORS, NUISANCE_SEED_OFFSET, identity_pairs
from ..models.sfn import SFN


def _r2(pred: np.ndarray, true: np.ndarray) -> float:
    ss_res = float(((pred - true) ** 2).sum())
    ss_tot = float(((true - true.mean()) ** 2).sum())
    return 1.0 - ss_res / max(ss_tot, 1e-12)


@torch.no_grad()
def evaluate_sfn(
    model: SFN,
    n: int = 2000,
    seed: int = EVAL_SEED,
    batch_size: int = 250,
    json_path: str | os.PathLike | None = None,
) -> dict:
    """Held-out quality of ``model`` on faces ``0 .. n-1`` of SynthFaces seed ``seed``.

    Returns (and writes to ``json_path`` if given) per-factor accuracy for binary and categorical factors,
    R^2 for continuous ones (``eye_color`` on the faces with open eyes only), and identity retrieval:
    ``identity_top1`` is the fraction of faces whose re-rendered positive (non-identity factors redrawn)
    is the nearest of all ``n`` positives in embedding cosine; ``identity_cos_one_factor_changed[f]`` is
    the mean cosine between a face and the same face with only factor ``f`` redrawn (first 500 faces,
    those where the value changed): near 1 for nuisance factors, lower for identity factors.
    """
    if n < 2:
        raise ValueError(f"evaluate_sfn needs n >= 2 faces, got {n}")
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    anchor, positive = identity_pairs(seed, np.arange(n), seed + NUISANCE_SEED_OFFSET)
    size = model.cfg.size if model.cfg.size in sf.SIZES else 64
    preds: dict[str, list] = {}
    emb_a, emb_p = [], []
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        for factors, embs in ((anchor, emb_a), (positive, emb_p)):
            images = torch.from_numpy(sf.render({k: v[sl] for k, v in factors.items()}, size)[0]).to(dev)
            out = model(images)
            embs.append(F.normalize(out["embedding"], dim=1).cpu())
            if factors is anchor:
                for k, v in model.read_out(out).items():
                    preds.setdefault(k, []).append(v.cpu().numpy())
    preds = {k: np.concatenate(v) for k, v in preds.items()}
    visible = sf.observable(anchor)
    mc = model.cfg
    result: dict = {"n": n, "seed": seed, "size": size, "binary_accuracy": {}, "continuous_r2": {}}
    for name in mc.binary:
        result["binary_accuracy"][name] = float(((preds[name] > 0.5) == (anchor[name] == 1)).mean())
    for name, _, _ in mc.continuous:
        keep = visible[name] if name in visible else np.ones(n, dtype=bool)
        result["continuous_r2"][name] = _r2(preds[name][keep].astype(np.float64), anchor[name][keep])
    result["categorical_accuracy"] = {
        name: float((preds[name] == anchor[name]).mean()) for name, _ in mc.categorical
    }
    a, p = torch.cat(emb_a), torch.cat(emb_p)
    sim = a @ p.t()
    result["identity_top1"] = float((sim.argmax(1) == torch.arange(n)).float().mean())
    off = ~torch.eye(n, dtype=torch.bool)
    result["identity_cos_positive"] = float(sim.diagonal().mean())
    result["identity_cos_negative"] = float(sim[off].mean())
    # sensitivity: the cosine between a face and the same face with one factor redrawn (first 500 faces)
    m = min(n, 500)
    base = {k: v[:m] for k, v in anchor.items()}
    emb0 = torch.cat(emb_a)[:m]
    redraw = sf.sample_factors(seed + 2 * NUISANCE_SEED_OFFSET, np.arange(m))
    result["identity_cos_one_factor_changed"] = {}
    for name in sf.FACTOR_NAMES:
        changed = sf.edit_factors(base, **{name: redraw[name]})
        embs = []
        for start in range(0, m, batch_size):
            sl = slice(start, min(m, start + batch_size))
            images = torch.from_numpy(sf.render({k: v[sl] for k, v in changed.items()}, size)[0]).to(dev)
            embs.append(model.embed(images).cpu())
        differs = torch.from_numpy(np.asarray(changed[name] != base[name]))
        cos = (torch.cat(embs) * emb0).sum(1)[differs]
        result["identity_cos_one_factor_changed"][name] = float(cos.mean()) if len(cos) else 1.0
    result["identity_factors"] = list(IDENTITY_FACTORS)
    result["nuisance_factors"] = list(NUISANCE_FACTORS)
    model.train(was_training)
    if json_path is not None:
        write_json(result, json_path)
    return result
