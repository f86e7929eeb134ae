"""Benchmark: SynthFaces rendering speed on one CPU core.

``run()`` renders fresh batches (new indices each time, so nothing is cached) for a fixed time at
each size and reports images per second. The renderer is pure numpy elementwise work (no BLAS), so
it is single-threaded by construction; torch is set to one thread as well for the measurement.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from ganinv.common import write_json
from ganinv.data import synthfaces as _sf

__all__ = ["add_arguments", "main", "run"]


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "threads": 1,
    }


def _measure(size: int, batch: int, seconds: float, seed: int = 0) -> dict:
    _sf.render(_sf.sample_factors(seed, np.arange(batch)), size)  # warm-up
    done, k = 0, 1
    start = time.perf_counter()
    while True:
        _sf.render(_sf.sample_factors(seed, np.arange(k * batch, (k + 1) * batch)), size)
        done += batch
        k += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return {
        "size": size,
        "batch": batch,
        "images": done,
        "seconds": round(elapsed, 3),
        "images_per_s": round(done / elapsed, 1),
    }


def run(
    json_path: str | None = None,
    size: int = 64,
    batch: int = 256,
    seconds: float = 3.0,
    extra_sizes: tuple[int, ...] = (256,),
) -> dict:
    """Measure SynthFaces images/s (sample + render) on one thread at ``size`` and ``extra_sizes``.

    Returns ``{"benchmark": "synthfaces", "machine": {...}, "results": [{"size", "batch",
    "images_per_s", ...}, ...]}`` and writes it as JSON to ``json_path`` when given.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    sizes = [size] + [s for s in extra_sizes if s != size]
    for s in sizes:
        _sf.factors._check_size(s)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = [_measure(s, batch, seconds) for s in sizes]
    finally:
        torch.set_num_threads(threads)
    out = {"benchmark": "synthfaces", "machine": _machine(), "results": results}
    if json_path is not None:
        write_json(out, json_path)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m ganinv.bench synthfaces``."""
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--size", type=int, default=64, help="render size (default 64; 256 is also run)")
    parser.add_argument("--batch", type=int, default=256, help="images per render call (default 256)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per size (default 3)")


def main(args: argparse.Namespace) -> dict:
    """Run the benchmark from parsed arguments and print a short table."""
    out = run(args.json, size=args.size, batch=args.batch, seconds=args.seconds)
    print(f"SynthFaces rendering, 1 thread, {out['machine']['processor']}")
    for r in out["results"]:
        print(f"  {r['size']:>4}x{r['size']:<4} batch {r['batch']:>4}: {r['images_per_s']:>9.1f} images/s")
    return out


if __name__ == "__main__":  # pragma: no cover - convenience
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    main(p.parse_args())
