"""Encoder training throughput: steps/s of the CLCAE / pSp / e4e trainer per arithmetic variant, and whether
the loss curve stays the same.

Each variant trains the same run from scratch (same seeds, data and objective) for ``--steps`` steps with the
real training loop; its speed is read off the wall times the loop logs after ``--warmup`` steps (so that
compiling is not counted), and its loss curve is compared with the first variant's (the baseline, fp32
eager) as the mean loss over the last half of the run, which averages over the batch-to-batch noise."""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

from ..training import encoders
from .common import machine_info, write_json

VARIANTS = {  # name -> the EncoderTrainConfig fields it sets; the first is the baseline
    "fp32": dict(precision="fp32", compile=False),
    "bf16": dict(precision="bf16", compile=False),
    "fp32+compile": dict(precision="fp32", compile=True),
    "bf16+compile": dict(precision="bf16", compile=True),
}


def measure(preset: str, kind: str, variant: str, steps: int, warmup: int, overrides: dict) -> dict:
    """Train ``kind`` / ``variant`` for ``steps`` steps in a temporary folder; time those after ``warmup``."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = encoders.preset(
            preset, kind=kind, out_dir=tmp, total_steps=steps, checkpoint_every=10**9,
            log_every=1, eval_n=0, progress=False, **VARIANTS[variant], **overrides,
        )  # fmt: skip
        result = encoders.train(cfg)
    history = result["history"]
    timed = [h for h in history if h["step"] > warmup]
    per_step = (timed[-1]["wall_s"] - history[warmup - 1]["wall_s"]) / len(timed)
    late = [h["loss"] for h in history[len(history) // 2 :]]
    row = dict(preset=preset, kind=kind, variant=variant, steps=steps, warmup=warmup, batch=cfg.batch_size)
    row.update(
        seconds_per_step=round(per_step, 4),
        steps_per_s=round(1 / per_step, 3),
        first_steps_s=round(history[warmup - 1]["wall_s"], 1),  # includes compiling
        late_loss_mean=round(statistics.fmean(late), 5),
        late_loss_sem=round(statistics.stdev(late) / len(late) ** 0.5, 5),
        loss_curve=[round(h["loss"], 4) for h in history],
    )
    print(
        f"{kind} {variant}: {row['steps_per_s']:.3f} steps/s, late loss {row['late_loss_mean']:.4f}",
        flush=True,
    )
    return row


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="synthfaces64", choices=sorted(encoders.PRESETS))
    p.add_argument("--kinds", nargs="+", default=["clcae", "psp"], choices=encoders.KINDS)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=120, help="steps per variant (from scratch)")
    p.add_argument("--warmup", type=int, default=20, help="steps not timed (compiling happens here)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--lr", type=float, default=5e-4, help="synthfaces64: as the bundled runs")
    p.add_argument("--json", default=None, help="write the results here")


def main(args: argparse.Namespace) -> dict:
    if not 1 <= args.warmup < args.steps - 1:
        raise ValueError(f"need 1 <= --warmup < --steps - 1, got {args.warmup} and {args.steps}")
    torch.set_num_threads(args.threads)
    overrides = dict(threads=args.threads)
    if args.preset == "synthfaces64":  # the bundled encoders' recipe
        overrides.update(lr=args.lr, f_ramp_steps=400, e4e_stage_every=100)
    rows = [
        measure(args.preset, k, v, args.steps, args.warmup, overrides)
        for k in args.kinds
        for v in args.variants
    ]
    base = args.variants[0]
    summary = {}
    for kind in args.kinds:
        ref = next(r for r in rows if r["kind"] == kind and r["variant"] == base)
        for r in rows:
            if r["kind"] == kind and r is not ref:
                summary[f"{kind} {r['variant']}"] = dict(
                    speedup_over_baseline=round(r["steps_per_s"] / ref["steps_per_s"], 3),
                    late_loss_change=round(r["late_loss_mean"] - ref["late_loss_mean"], 5),
                    late_loss_sem=round((r["late_loss_sem"] ** 2 + ref["late_loss_sem"] ** 2) ** 0.5, 5),
                )
    result = {
        "benchmark": "encoder_step",
        "machine": machine_info(),
        "baseline": base,
        "summary": summary,
        "results": rows,
    }
    write_json(result, args.json)
    return result
