"""The generator benchmark writes a well-formed JSON whose numbers are consistent with each other."""

import argparse
import json

from ganinv.bench import generator


def test_generator_benchmark_json(tmp_path):
    out = tmp_path / "bench.json"
    generator.main(argparse.Namespace(sizes=[16], batch=2, min_seconds=0.0, json=str(out)))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "generator" and data["machine"]["cpu_count"] >= 1
    rows = {(r["device"], r["impl"], r["mode"]): r for r in data["results"]}
    fwd, both = rows[("cpu", "ref", "forward")], rows[("cpu", "ref", "forward+backward")]
    assert fwd["size"] == 16 and fwd["batch"] == 2
    # rates agree with the measured times (which is faster is the benchmark's finding, not a test's: one
    # timing of a 16 px batch with min_seconds 0 is noise, and forward+backward once came out faster)
    for row in (fwd, both):
        assert row["size"] == 16 and row["batch"] == 2 and row["seconds_per_batch"] > 0
        assert abs(row["images_per_s"] - 2 / row["seconds_per_batch"]) / row["images_per_s"] < 0.01


def test_explorer_benchmark_json(tmp_path, tiny_generator):
    from ganinv.bench import explorer
    from ganinv.checkpoints import save_generator

    save_generator(tmp_path / "g.pt", tiny_generator())
    out = tmp_path / "explorer.json"
    explorer.main(argparse.Namespace(generator=str(tmp_path / "g.pt"), updates=3, json=str(out)))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "explorer" and data["size"] == 32
    seconds = {r["setting"]: r["seconds_per_update"] for r in data["results"]}
    assert set(seconds) == {"one slider", "one slider, style mixing view"}
    assert all(0 < s < 60 for s in seconds.values())


def test_gan_step_benchmark_json(tmp_path):
    from ganinv.bench import gan_step

    out = tmp_path / "gan_step.json"
    args = dict(preset="tiny", steps=2, channel_multipliers=[0.25], threads=1, device="cpu", json=str(out))
    gan_step.main(argparse.Namespace(**args))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "gan_step"
    rows = {(r.get("channel_multiplier"), r["precision"]): r for r in data["results"]}
    assert set(rows) == {(None, "fp32"), (None, "bf16"), (0.25, "fp32"), (0.25, "bf16")}
    for r in rows.values():
        assert r["steps"] == 2 and r["batch"] == 4
        assert abs(r["images_per_s"] - 4 / r["seconds_per_step"]) / r["images_per_s"] < 0.01
    ratio = rows[(0.25, "bf16")]["images_per_s"] / rows[(0.25, "fp32")]["images_per_s"]
    assert abs(data["bf16_speedup_over_fp32"]["0.25"] - ratio) < 0.01


def test_encoder_step_benchmark_json(tmp_path):
    from ganinv.bench import encoder_step

    out = tmp_path / "encoder_step.json"
    args = dict(preset="tiny", kinds=["psp"], variants=["fp32", "bf16"], steps=5, warmup=2, threads=1,
                lr=5e-4, json=str(out))  # fmt: skip
    encoder_step.main(argparse.Namespace(**args))
    data = json.loads(out.read_text())
    assert data["benchmark"] == "encoder_step" and data["baseline"] == "fp32"
    rows = {r["variant"]: r for r in data["results"]}
    assert set(rows) == {"fp32", "bf16"}
    for r in rows.values():
        assert len(r["loss_curve"]) == 5 and r["steps_per_s"] > 0
        assert abs(r["steps_per_s"] * r["seconds_per_step"] - 1) < 0.01
    # the same seeds and data: the first step's loss agrees to bfloat16 precision
    assert (
        abs(rows["bf16"]["loss_curve"][0] - rows["fp32"]["loss_curve"][0])
        < 0.02 * rows["fp32"]["loss_curve"][0]
    )
    ratio = rows["bf16"]["steps_per_s"] / rows["fp32"]["steps_per_s"]
    assert abs(data["summary"]["psp bf16"]["speedup_over_baseline"] - ratio) < 0.01
