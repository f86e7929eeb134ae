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
    assert abs(fwd["images_per_s"] - 2 / fwd["seconds_per_batch"]) / fwd["images_per_s"] < 0.01
    assert both["images_per_s"] < fwd["images_per_s"]  # a backward pass costs time
