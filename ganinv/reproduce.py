"""``make reproduce``: execute every numbered notebook headless (papermill), regenerate ``figures/``,
strip the notebooks the way the pre-commit hook does, and print the results table from the metrics JSON
files."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / "figures"
STRIP_ARGS = [
    "--keep-output",
    "--keep-count",
    "--extra-keys",
    "metadata.papermill cell.metadata.papermill cell.metadata.execution",
    "--keep-metadata-keys",  # the widgets' state: a static viewer then shows notebook 04's explorer
    "metadata.widgets",
]


def numbered_notebooks(only: list[str] | None = None) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) or p.stem == o for o in only)]
    return paths


def execute(path: Path, parameters: dict, output: Path | None = None, timeout: int = 3600) -> Path:
    """Run one notebook with papermill in its own folder (as Jupyter and nbval do) and write it back."""
    import papermill

    output = output or path
    papermill.execute_notebook(
        str(path),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(path.parent),
        progress_bar=False,
        log_output=True,
        execution_timeout=timeout,
        # the kernel's own warnings (e.g. ipykernel's "running over TCP without encryption", about a kernel
        # that only this process talks to, on this machine) are not the notebook's output; errors still show
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    return output


def strip(path: Path) -> None:
    subprocess.run([sys.executable, "-m", "nbstripout", *STRIP_ARGS, str(path)], check=True)


def results_table() -> str:
    rows = []
    for path in sorted(FIGURES.glob("*.json")):
        if path.name.startswith("bench_"):
            continue
        data = json.loads(path.read_text())
        flat = {k: v for k, v in data.items() if isinstance(v, int | float | str)}
        rows.append(f"{path.stem}: " + ", ".join(f"{k}={v}" for k, v in flat.items()))
    return "\n".join(rows) if rows else "(no metrics in figures/ yet)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="ganinv reproduce", description=__doc__)
    p.add_argument("--only", nargs="*", help="notebook prefixes or names to run (default: all)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (what the tests run)")
    p.add_argument("--device", default="auto")
    p.add_argument("--checkpoint", default=None, help="override the CHECKPOINT parameter (e.g. real weights)")
    args = p.parse_args(argv)
    # Only values that differ from the notebooks' defaults: with none, papermill injects no parameters cell,
    # so the committed notebooks stay exactly as written.
    params: dict = {}
    if args.smoke:
        params["SMOKE"] = True
    if args.device != "auto":
        params["DEVICE"] = args.device
    if args.checkpoint:
        params["CHECKPOINT"] = args.checkpoint
    paths = numbered_notebooks(args.only)
    if not paths:
        print(f"no numbered notebooks in {NOTEBOOKS.relative_to(ROOT)}/ yet")
    seconds = {}
    for path in paths:
        print(f"executing {path.relative_to(ROOT)} ...", flush=True)
        start = time.perf_counter()
        execute(path, params)
        seconds[path.name] = time.perf_counter() - start
        print(f"  {seconds[path.name]:.0f} s", flush=True)
        strip(path)
    print(results_table())
    if seconds:  # wall time of each notebook (the README's budget: 3 minutes each on a 2-core CPU)
        print("wall time: " + ", ".join(f"{name[:2]} {s:.0f} s" for name, s in seconds.items()))


if __name__ == "__main__":
    main()
