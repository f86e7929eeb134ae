"""SFN training throughput per memory layout: images/s of whole SFN training steps (forward, the four
losses, backward, Adam) in the default (contiguous) layout and in channels-last.

The SFN trainer used channels-last on CPU for faster convolutions until it corrupted the heap in backward
with oneDNN's AVX2 kernels (torch 2.14.1; CPUs without AVX-512, or ``ONEDNN_MAX_CPU_ISA=AVX2``). Each layout
is therefore timed in a fresh interpreter: a crash is recorded as the layout's result instead of ending the
benchmark, and the speed-up is reported only when both layouts ran.
"""

from __future__ import annotations

import argparse
import json

import torch

from ..training import sfn
from .common import machine_info, run_python, time_per_call, write_json

LAYOUTS = ("contiguous", "channels_last")


def measure(preset: str, layout: str, threads: int, min_seconds: float) -> dict:
    """Seconds per training step of ``preset``'s SFN on one fixed batch, in ``layout``, in this process."""
    torch.set_num_threads(threads)
    cfg = sfn.preset(preset)
    torch.manual_seed(cfg.seed)
    model = sfn.SFN(sfn.model_config(cfg)).train()
    images, targets = sfn.training_batch(cfg, 0)  # [2B, 3, S, S]
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step() -> None:
        loss = sfn.sfn_losses(model, model(images), targets, cfg)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = time_per_call(step, "cpu", min_seconds=min_seconds, min_calls=3, warmup=2)
    return {"seconds_per_step": round(seconds, 4), "images_per_s": round(images.shape[0] / seconds, 1)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="sfn64", choices=sorted(sfn.PRESETS))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--min-seconds", type=float, default=5.0, help="time each layout at least this long")
    p.add_argument("--onednn-isa", default="", help="ONEDNN_MAX_CPU_ISA of the timed processes (e.g. AVX2)")
    p.add_argument("--timeout", type=float, default=600, help="seconds before a layout counts as hung")
    p.add_argument("--only", choices=LAYOUTS, help=argparse.SUPPRESS)  # the child process: one layout
    p.add_argument("--json", default=None, help="write the results here")


def main(args: argparse.Namespace) -> dict:
    if args.threads < 1 or args.min_seconds <= 0:
        raise ValueError(
            f"--threads must be >= 1 and --min-seconds > 0, got {args.threads}, {args.min_seconds}"
        )
    if args.only:
        print(json.dumps(measure(args.preset, args.only, args.threads, args.min_seconds)))
        return {}
    env = {"ONEDNN_MAX_CPU_ISA": args.onednn_isa} if args.onednn_isa else {}
    common = ["--preset", args.preset, "--threads", str(args.threads), "--min-seconds", str(args.min_seconds)]
    rows = []
    for layout in LAYOUTS:
        child = run_python(["-m", "ganinv.bench", "sfn-step", *common, "--only", layout], env, args.timeout)
        row = {"layout": layout, "ok": child["ok"]}
        row.update(
            json.loads(child["stdout"].strip().splitlines()[-1])
            if child["ok"]
            else {"problem": child["problem"]}
        )
        print(f"{args.preset} {layout}: {row.get('images_per_s', row.get('problem'))}", flush=True)
        rows.append(row)
    speed = {r["layout"]: r.get("images_per_s") for r in rows}
    result = {
        "benchmark": "sfn_step",
        "preset": args.preset,
        "machine": {
            **machine_info(),
            "torch_threads": args.threads,
            "onednn_max_cpu_isa": args.onednn_isa or "native",
        },
        "results": rows,
        "channels_last_speedup": round(speed["channels_last"] / speed["contiguous"], 3)
        if all(speed.values())
        else None,
    }
    write_json(result, args.json)
    return result
