"""What every chapter notebook shares: the setup after its ``parameters`` cell (:func:`start`), the verdict
lines of its claims (:func:`claim`), the curves of its live training run (:func:`plot_history`), and the
metrics JSON it writes (:meth:`Chapter.write_metrics`), so each notebook shows only its own idea."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import viz
from .common import dumps, rounded
from .devices import resolve_device

FIGURES_ENV = "GANINV_FIGURES_DIR"  # the tests send a notebook's figures and JSON here instead of figures/


@dataclass
class Chapter:
    """A notebook's run: its device, the folder its figures go to and the metrics it records."""

    device: torch.device
    fig_dir: Path
    metrics: dict = field(default_factory=dict)

    def save(self, fig, name: str) -> Path:
        """Save a matplotlib figure as ``fig_dir/name`` (atomically; it still displays in the notebook)."""
        return viz.save_figure(fig, self.fig_dir / name)

    def draw_or_show(
        self, name: str, build: Callable[[], object], needs: Sequence, stored: str | Path, skip: bool = False
    ) -> str:
        """Figure ``name`` drawn by ``build()`` and saved when every file in ``needs`` (models that are not
        bundled) exists and not ``skip``; otherwise the copy stored in the folder ``stored`` is displayed, or
        a note printed when there is none. Returns "drawn", "stored" or "missing"."""
        missing = [str(p) for p in needs if not Path(p).is_file()]
        if not missing and not skip:
            self.save(build(), name)
            return "drawn"
        path = Path(stored) / name
        if path.is_file():
            from IPython.display import Image, display

            display(Image(filename=str(path)))
            return "stored"
        models = ", ".join(missing[:2]) or "skipped"
        print(f"{name}: neither the models ({models}) nor {path} exist; see the README for the commands")
        return "missing"

    def write_metrics(self, name: str) -> Path:
        """Write :attr:`metrics` as ``fig_dir/name`` with floats rounded to 6 significant digits and the wall
        times (:data:`TIMING_KEYS`, different in every run) left out, so a re-run on the same machine rewrites
        the same file. Timings belong in the benchmarks (``python -m ganinv.bench``)."""
        path = self.fig_dir / name
        path.write_text(dumps(rounded(_without_timings(self.metrics))) + "\n")
        return path


TIMING_KEYS = frozenset({"seconds_per_image", "seconds", "wall_s", "images_per_s"})


def _without_timings(value):
    if isinstance(value, Mapping):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, (list, tuple)):
        return [_without_timings(v) for v in value]
    return value


def start(device: str = "auto", seed: int = 0, figures: str | Path = "../figures", **record) -> Chapter:
    """The setup of a chapter: check ``device`` (a clear error for an unknown or absent one), seed torch,
    create the figure folder (``$GANINV_FIGURES_DIR`` overrides ``figures``), set small figure defaults, and
    start the metrics with ``record`` (the notebook's parameters worth keeping) and the seed."""
    import matplotlib.pyplot as plt

    dev = resolve_device(device)
    torch.manual_seed(seed)
    fig_dir = Path(os.environ.get(FIGURES_ENV, figures))
    fig_dir.mkdir(parents=True, exist_ok=True)
    plt.rcParams.update({"figure.dpi": 80, "font.size": 9})
    return Chapter(dev, fig_dir, {**{k: str(v) if isinstance(v, Path) else v for k, v in record.items()},
                                  "seed": seed})  # fmt: skip


def claim(text: str, holds: bool | None, why: str = "") -> bool | None:
    """Print one verdict line: ``text: yes``, ``text: NO`` (with ``why``, the reason it fails in this world,
    on the next line) or ``text: not measured``. Returns ``holds``."""
    print(f"{text}: {'not measured' if holds is None else 'yes' if holds else 'NO'}")
    if holds is False and why:
        print(f"  why: {why}")
    return holds


def decide(
    text: str, interval: Mapping[str, float] | None, expect: str, digits: int = 3, margin: float = 0.0
) -> str | None:
    """Print one verdict line for a claim about a paired difference ``B - A`` (an interval of
    :func:`ganinv.stats.paired_bootstrap`): ``text: confirmed / refuted / undecided (difference, 95 %
    interval, n)``, "undecided" whenever the interval contains 0; ``expect`` is the claimed sign ("lower" or
    "higher"), or "same" within ``margin`` (an equivalence bound, :func:`ganinv.stats.verdict`). ``interval``
    None: ``text: not measured``. Returns the verdict (or None)."""
    from .stats import verdict

    if interval is None:
        print(f"{text}: not measured")
        return None
    v = verdict(interval, expect, margin)
    d = digits
    lo, hi = interval["lo"], interval["hi"]
    span = f"{interval['level']:.0%} interval [{lo:+.{d}f}, {hi:+.{d}f}]"
    bound = f", bound ±{margin:.{d}f}" if expect == "same" else ""
    print(f"{text}: {v} (difference {interval['mean']:+.{d}f}, {span}{bound}, n = {interval['n']})")
    return v


def plot_history(
    ax,
    history: Sequence[Mapping],
    series: Mapping[str, str],
    title: str = "",
    ylabel: str = "loss",
    **plot_kw,
):
    """One curve per ``series`` item (legend label -> key of the history entries) against ``"step"``, on
    the matplotlib axes ``ax``; entries without the key are skipped. Labels the axes; a legend when there are
    several curves."""
    for label, key in series.items():
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            ax.plot(*zip(*points), label=label, **plot_kw)
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    if len(series) > 1:
        ax.legend()
    return ax
