"""Every trainer runs a few real steps in a fresh interpreter, on this CPU's own kernels and on oneDNN's AVX2
kernels (what a CPU without AVX-512 runs), so that a native crash or hang fails one test with the signal
and the trainer's name instead of killing the whole pytest run.

Why: the SFN trainer's channels-last layout corrupted the heap in backward under torch 2.14.1 with the AVX2
kernels (``double free or corruption``, SIGABRT or SIGSEGV; a hang with two threads), which passed on
AVX-512 machines. ``ONEDNN_MAX_CPU_ISA=AVX2`` makes an AVX-512 machine take the same kernels."""

from __future__ import annotations

import json

import pytest

from ganinv.bench.common import run_python

ISAS = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}

# ganinv train ARGS (tiny presets; --out-dir is added), each a layout / precision path a user can take
TRAINERS = {
    "sfn": ["sfn", "--preset", "tiny", "--total-steps", "4"],
    "gan-fp32": ["gan", "--preset", "tiny", "--total-steps", "4"],
    "gan-bf16": ["gan", "--preset", "tiny", "--total-steps", "4", "--precision", "bf16"],
    "contrastive": ["contrastive", "--preset", "tiny", "--total-steps", "3"],
    "clcae": ["clcae", "--preset", "tiny", "--total-steps", "3"],
    "psp": ["psp", "--preset", "tiny", "--total-steps", "3"],
    "e4e": ["e4e", "--preset", "tiny", "--total-steps", "3"],
    "inpaint": ["inpaint", "--preset", "tiny", "--total-steps", "3"],
}


def train_in_fresh_process(args: list[str], out_dir, env: dict) -> None:
    run = run_python(["-m", "ganinv.cli", "train", *args, "--out-dir", str(out_dir), "--progress", "false"],
                     env, timeout=300)  # fmt: skip
    assert run["ok"], f"ganinv train {' '.join(args)} ({env or 'native kernels'}): {run['problem']}"


@pytest.mark.slow
@pytest.mark.parametrize("isa", sorted(ISAS))
@pytest.mark.parametrize("trainer", sorted(TRAINERS))
def test_trainer_runs_in_a_fresh_process(tmp_path, trainer, isa):
    train_in_fresh_process(TRAINERS[trainer], tmp_path / trainer, ISAS[isa])
    assert (tmp_path / trainer / "training_state.pt").is_file()
    if trainer == "inpaint":  # stage 2 (mask-aware skip features) starts from the stage-1 model
        stage1 = next((tmp_path / trainer).glob("inpainter*.pt"))
        stage2 = ["inpaint", "--preset", "tiny", "--total-steps", "2", "--stage", "2", "--init", str(stage1)]
        train_in_fresh_process(stage2, tmp_path / "stage2", ISAS[isa])


def test_a_native_crash_is_named_not_fatal():
    abort = run_python(["-c", "import os; os.abort()"])
    assert not abort["ok"] and "SIGABRT" in abort["problem"] and "native crash" in abort["problem"]
    failed = run_python(["-c", "import sys; sys.exit('bad input')"])
    assert failed["problem"] == "exit status 1: bad input"
    hung = run_python(["-c", "import time; time.sleep(30)"], timeout=1)
    assert hung["problem"].startswith("hung")


@pytest.mark.slow
def test_sfn_step_benchmark_times_each_layout_in_its_own_process(tmp_path):
    out = tmp_path / "sfn_step.json"
    run = run_python(["-m", "ganinv.bench", "sfn-step", "--preset", "tiny", "--min-seconds", "0.2",
                      "--json", str(out)])  # fmt: skip
    assert run["ok"], run["problem"]
    result = json.loads(out.read_text())
    rows = {r["layout"]: r for r in result["results"]}
    assert set(rows) == {"contiguous", "channels_last"} and rows["contiguous"]["ok"]
    for r in rows.values():  # a layout either has its timing or names its crash
        assert (r["images_per_s"] > 0) if r["ok"] else ("native crash" in r["problem"])
    both = all(r["ok"] for r in rows.values())
    assert (result["channels_last_speedup"] is not None) == both
