"""Held-out evaluation of the stage-2 inversion encoders (CLCAE, pSp, e4e): reconstruction quality of every
output on images never trained on (``ganinv eval encoder``; the encoder trainer runs it at the end of a run
and writes ``eval.json``)."""

from __future__ import annotations

import time
from collections import defaultdict

import torch
from torch import nn

from ..common import EVAL_SEED
from ..data.images import pool_to
from ..data.pairs import held_out_pairs
from ..data.synthfaces import real_images
from ..devices import sync
from ..metrics import id_similarity, lpips_features, mse, psnr, ssim, summarize
from ..models.clcae import CLCAEOutput
from ..models.stylegan2 import Generator


def _outputs(out) -> list[tuple[str, torch.Tensor, dict]]:
    """(name, codes, extra synthesis arguments) of every image an encoder output gives."""
    if isinstance(out, CLCAEOutput):
        named = [("w", out.w, {}), ("w_plus", out.w_plus, {})]
        if out.f is not None:
            named.append(("f", out.w_plus, dict(f=out.f, f_res=out.f.shape[-1])))
        return named
    return [("w_plus", out, {})]


@torch.no_grad()
def evaluate_encoder(
    model: nn.Module,
    G: Generator,
    sfn: nn.Module,
    n: int = 500,
    seed: int = EVAL_SEED,
    source: str = "synthfaces",
    batch_size: int = 100,
) -> dict:
    """Reconstruction quality of ``n`` held-out images (never training data): SynthFaces of ``seed``
    (``source="synthfaces"``) or G(w) with constant noise from the held-out pair stream
    (``"generated"``); targets and reconstructions are clamped to [-1, 1] as saved images would be. For each
    output (CLCAE: ``w``, ``w_plus``, ``f``; pSp / e4e: ``w_plus``; G with constant noise, f fully blended):
    ``mse``, ``psnr``, ``ssim``, ``lpips_sfn``, ``id_sfn`` (means, plus ``*_std``) and ``seconds_per_image``
    (encoder + that output's G pass). ``model(image)`` may return a
    :class:`~ganinv.models.clcae.CLCAEOutput` or w+ ``[N, n_latent, style_dim]``."""
    if source not in ("synthfaces", "generated"):
        raise ValueError(f"source must be 'synthfaces' or 'generated', got {source!r}")
    if n < 1:
        raise ValueError(f"evaluate_encoder needs n >= 1 images, got {n}")
    size = getattr(model, "image_size", None) or model.cfg.backbone.size
    dev = G.w_avg.device
    if source == "generated":
        batches = (
            x.clamp(-1, 1) for x, _ in held_out_pairs(G, n, seed, size, batch_size, noise_mode="const")
        )
    else:
        batches = (real_images(size, min(batch_size, n - s), s, seed) for s in range(0, n, batch_size))
    was_training = model.training
    model.eval()
    values: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    seconds: dict[str, float] = defaultdict(float)
    for x in batches:
        x = x.to(dev)
        t0 = time.perf_counter()
        out = model(x)
        sync(dev)
        t_encode = time.perf_counter() - t0
        for name, codes, kw in _outputs(out):
            t0 = time.perf_counter()
            image = pool_to(G.synthesis(codes, noise_mode="const", **kw), size).clamp(-1, 1)
            sync(dev)
            seconds[name] += t_encode + time.perf_counter() - t0
            v = values[name]
            v["mse"].append(mse(image, x))
            v["psnr"].append(psnr(image, x))
            v["ssim"].append(ssim(image, x))
            v["lpips_sfn"].append(lpips_features(image, x, sfn))
            v["id_sfn"].append(id_similarity(image, x, sfn))
    model.train(was_training)
    result: dict = {"n": n, "seed": seed, "source": source, "image_size": size}
    for name, v in values.items():
        metrics = summarize({k: torch.cat(t).float() for k, t in v.items()})
        result[name] = {**metrics, "seconds_per_image": seconds[name] / n}
    return result
