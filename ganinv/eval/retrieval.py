"""Held-out evaluation of CLCAE stage 1 (the contrastive aligner): cross-modal image <-> w retrieval on
generated pairs never trained on (``ganinv eval contrastive``; the contrastive trainer runs it at the end of a
run and writes ``eval.json``)."""

from __future__ import annotations

import torch

from ..common import EVAL_SEED
from ..data.pairs import held_out_pairs
from ..models.contrastive import ContrastiveAligner, info_nce, top_k_accuracy
from ..models.stylegan2 import Generator


@torch.no_grad()
def evaluate_retrieval(
    model: ContrastiveAligner,
    G: Generator,
    n: int = 1000,
    seed: int = EVAL_SEED,
    batch_size: int = 250,
    truncation: float = 1.0,
    noise_mode: str = "random",
) -> dict:
    """Cross-modal retrieval on ``n`` held-out pairs (:func:`held_out_pairs`, disjoint from training).

    ``image_to_latent_top{1,5}``: fraction of images whose own w is among the 1 / 5 latents of highest cosine
    among all ``n``; ``latent_to_image_top{1,5}`` the converse. Chance is ``k / n``. Also the held-out InfoNCE
    over all ``n`` pairs at the model's temperature, and mean cosines of matching and non-matching pairs.
    """
    if n < 2:
        raise ValueError(f"evaluate_retrieval needs n >= 2 pairs, got {n}")
    was_training = model.training
    model.eval()
    e_img, e_lat = [], []
    for images, w in held_out_pairs(
        G, n, seed, model.image_size, batch_size, truncation=truncation, noise_mode=noise_mode
    ):
        e_img.append(model.embed_image(images).float().cpu())
        e_lat.append(model.embed_latent(w).float().cpu())
    model.train(was_training)
    e_img, e_lat = torch.cat(e_img), torch.cat(e_lat)
    tau = float(model.temperature)
    out = info_nce(e_img, e_lat, tau)
    cos = out.logits * tau  # [n, n]
    result: dict = {"n": n, "seed": seed, "temperature": tau, "loss": out.loss.item()}
    for k in (1, 5):
        i2w, w2i = top_k_accuracy(out.logits, k)
        result[f"image_to_latent_top{k}"], result[f"latent_to_image_top{k}"] = i2w, w2i
        result[f"chance_top{k}"] = min(k, n) / n
    off = ~torch.eye(n, dtype=torch.bool)
    result["cos_positive"], result["cos_negative"] = cos.diagonal().mean().item(), cos[off].mean().item()
    return result
