"""Benchmark: seconds per update of the ``LatentExplorer`` widget (issue target: well under a second on CPU
at 64x64).

An update is what moving one direction slider costs: edit the latent, synthesise, encode the PNG. Measured
with GANSpace directions (cheap to compute, so the benchmark does not wait for InterFaceGAN labels), plain
and with the style-mixing view on.
"""

from __future__ import annotations

import argparse

import torch

from .common import machine_info, write_json

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", default="synthfaces64", help="bundled name or path of a generator")
    parser.add_argument("--updates", type=int, default=20, help="updates timed per setting")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def main(args: argparse.Namespace) -> None:
    from ..checkpoints import load_generator
    from ..editing import ganspace_directions
    from ..widgets import LatentExplorer, time_update

    G = load_generator(args.generator).eval()
    directions = ganspace_directions(G, n=2000, k=3, seed=0)
    explorer = LatentExplorer(G, directions=directions, n_components=0)
    results = [{"setting": "one slider", "seconds_per_update": round(time_update(explorer, args.updates), 4)}]
    explorer.mix.value = True
    results.append(
        {
            "setting": "one slider, style mixing view",
            "seconds_per_update": round(time_update(explorer, args.updates), 4),
        }
    )
    write_json(
        {
            "benchmark": "explorer",
            "generator": str(args.generator),
            "size": G.size,
            "machine": machine_info(),
            "torch_threads": torch.get_num_threads(),
            "results": results,
        },
        args.json,
    )
