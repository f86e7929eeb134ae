"""Timing helpers and machine description shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from .. import common
from ..devices import sync


def machine_info() -> dict:
    """What the numbers were measured on."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "native"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def time_per_call(
    fn: Callable[[], object],
    device: torch.device | str,
    min_seconds: float = 2.0,
    min_calls: int = 3,
    warmup: int = 1,
) -> float:
    """Mean seconds per call of ``fn`` after ``warmup`` calls (at least ``min_calls`` and ``min_seconds``)."""
    for _ in range(warmup):
        fn()
    sync(device)
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        fn()
        calls += 1
        sync(device)
    return (time.perf_counter() - start) / calls


def write_json(result: dict, path: str | os.PathLike | None) -> None:
    """Print a benchmark's result and, with ``path``, write it there (atomically)."""
    print(json.dumps(result, indent=2))
    if path:
        common.write_json(result, path)


def run_python(args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> dict:
    """Run ``python ARGS`` in a fresh interpreter (``env`` added to this one's environment), so that a native
    crash (heap corruption, segfault) or a hang ends that process, not the caller.

    Returns ``{"ok", "returncode", "stdout", "problem"}``; ``problem`` is one line naming what went wrong
    (the signal, the exit status or the time-out, with the last line of stderr), ``""`` when ``ok``."""
    try:
        proc = subprocess.run(
            [sys.executable, *args], env={**os.environ, **(env or {})},
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"ok": False, "returncode": None, "stdout": "", "problem": f"hung: no exit in {timeout:g} s"}
    code = proc.returncode
    last = (proc.stderr.strip().splitlines() or [""])[-1][:300]
    if code == 0:
        problem = ""
    elif code < 0:
        problem = f"killed by {signal.Signals(-code).name} (a native crash): {last}"
    else:
        problem = f"exit status {code}: {last}"
    return {"ok": code == 0, "returncode": code, "stdout": proc.stdout, "problem": problem}
