"""Generator throughput: images/s of forward and forward+backward, per size, device and op implementation."""

from __future__ import annotations

import argparse

import torch

from ..models.stylegan2 import Generator
from ..ops import use_impl
from .common import machine_info, time_per_call, write_json


def measure(size: int, batch: int, device: str, impl: str, min_seconds: float) -> list[dict]:
    torch.manual_seed(0)
    G = Generator(size).to(device)  # config F: style_dim 512, 8 mapping layers, channel multiplier 2
    z = torch.randn(batch, G.style_dim, device=device)

    def forward():
        with torch.no_grad():
            G(z, noise_mode="random")

    def forward_backward():
        G.zero_grad(set_to_none=True)
        G(z, noise_mode="random").square().mean().backward()

    rows = []
    with use_impl(impl):
        for mode, fn in (("forward", forward), ("forward+backward", forward_backward)):
            sec = time_per_call(fn, device, min_seconds=min_seconds)
            rows.append(
                dict(
                    device=device,
                    impl=impl,
                    size=size,
                    batch=batch,
                    mode=mode,
                    seconds_per_batch=round(sec, 5),
                    images_per_s=round(batch / sec, 2),
                )
            )
            print(f"{device:5s} {impl:4s} {size:4d}px {mode:17s} {batch / sec:9.2f} images/s", flush=True)
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--min-seconds", type=float, default=2.0, help="time each case at least this long")
    p.add_argument("--json", default=None, help="write the results here")


def main(args: argparse.Namespace) -> dict:
    rows = []
    cases = [("cpu", "ref")]
    if torch.cuda.is_available():
        cases += [("cuda", "ref"), ("cuda", "cuda")]
    for device, impl in cases:
        for size in args.sizes:
            rows += measure(size, args.batch, device, impl, args.min_seconds)
    result = {
        "benchmark": "generator",
        "config": "Generator(size) defaults: style_dim 512, n_mlp 8, cm 2",
        "machine": machine_info(),
        "results": rows,
    }
    cuda_rows = {(r["impl"], r["size"], r["mode"]): r["images_per_s"] for r in rows if r["device"] == "cuda"}
    if cuda_rows:
        result["cuda_kernels_speedup_over_ref"] = {
            f"{size}px {mode}": round(cuda_rows[("cuda", size, mode)] / cuda_rows[("ref", size, mode)], 3)
            for (impl, size, mode) in cuda_rows
            if impl == "ref"
        }
    write_json(result, args.json)
    return result
