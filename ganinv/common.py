"""Small pieces every layer shares (models, trainers, evaluators, benchmarks): the held-out evaluation seed,
atomic JSON writing and rounding of result numbers. Imports nothing from the package."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

EVAL_SEED = 1_000_003  # SynthFaces seed and pair stream of every held-out evaluation; training uses others


_NUMBER_LIST = re.compile(r"\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]")


def dumps(values: Mapping) -> str:
    """Indented JSON with every list of plain numbers on one line (per-image values: one line per list, not
    one line per value, so the results files stay readable and their diffs small)."""
    text = json.dumps(values, indent=2)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)


def write_json(values: Mapping, path: str | os.PathLike) -> Path:
    """Write ``values`` as indented JSON (:func:`dumps`) to ``path`` atomically (a temporary file, then a
    rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps(values) + "\n")
    os.replace(tmp, path)
    return path


def update_json(values: Mapping, path: str | os.PathLike) -> Path:
    """Write ``values`` over the top-level keys of the JSON file ``path`` (created when absent), keeping the
    keys that other commands stored there (e.g. ``ganinv eval budget`` and ``ganinv eval time-to-quality``
    share ``figures/03_budget.json``); atomically, like :func:`write_json`."""
    path = Path(path)
    old = json.loads(path.read_text()) if path.is_file() else {}
    return write_json({**old, **values}, path)


def rounded(value, digits: int = 6):
    """``value`` with every float (in nested dicts and lists) rounded to ``digits`` significant digits, so a
    re-run on the same machine writes the same file."""
    if isinstance(value, float):
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.{digits}g}")
    if isinstance(value, Mapping):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value
