"""GAN training throughput: images/s of whole training steps (D, G, lazy R1 and path length) per precision."""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from ..training import gan
from .common import machine_info, write_json


def measure(preset: str, precision: str, steps: int, device: str, overrides: dict) -> dict:
    """Train one step of ``preset`` in a temporary directory, then time a resumed run of ``steps`` more
    (setup, resume and one checkpoint included); ``steps`` should cover the lazy-regularisation intervals."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = gan.preset(
            preset,
            out_dir=tmp,
            precision=precision,
            device=device,
            total_steps=1,
            checkpoint_every=10**9,
            sample_every=0,
            progress=False,
            **overrides,
        )
        gan.train(cfg)  # warm-up step, written as the state to resume from
        cfg.total_steps, cfg.resume = 1 + steps, True
        start = time.perf_counter()
        gan.train(cfg)
        seconds = time.perf_counter() - start
    per_step = seconds / steps
    row = dict(preset=preset, precision=precision, device=device, steps=steps, batch=cfg.batch_size)
    row.update(
        overrides, seconds_per_step=round(per_step, 4), images_per_s=round(cfg.batch_size / per_step, 2)
    )
    print(f"{preset} {overrides or ''} {precision}: {row['images_per_s']:.2f} images/s", flush=True)
    return row


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="synthfaces64", choices=sorted(gan.PRESETS))
    p.add_argument("--steps", type=int, default=16, help="timed steps (16 covers one R1 and four PL steps)")
    p.add_argument("--channel-multipliers", type=float, nargs="*", default=[], help="also time these widths")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write the results here")


def main(args: argparse.Namespace) -> dict:
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    torch.set_num_threads(args.threads)
    widths = [{}] + [{"channel_multiplier": cm} for cm in args.channel_multipliers]
    rows = [measure(args.preset, p, args.steps, args.device, w) for w in widths for p in gan.PRECISIONS]
    speed = {(r.get("channel_multiplier"), r["precision"]): r["images_per_s"] for r in rows}
    result = {
        "benchmark": "gan_step",
        "machine": machine_info(),
        "results": rows,
        "bf16_speedup_over_fp32": {
            str(cm or "preset"): round(speed[(cm, "bf16")] / speed[(cm, "fp32")], 3) for cm, _ in speed
        },
    }
    write_json(result, args.json)
    return result
