"""``python -m ganinv.bench {generator,synthfaces} [--json OUT]``."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {"generator": "ganinv.bench.generator", "synthfaces": "ganinv.bench.synthfaces"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ganinv.bench", description=__doc__)
    sub = parser.add_subparsers(dest="name", required=True)
    for name, module in BENCHMARKS.items():
        mod = importlib.import_module(module)
        mod.add_arguments(sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0]))
    args = parser.parse_args(argv)
    importlib.import_module(BENCHMARKS[args.name]).main(args)


if __name__ == "__main__":
    main()
