"""Trainers on one shared loop (``loop.py``): config dataclass, progress bar, atomic checkpoints, exact
resume, seeds, multi-process data parallelism through ``torchrun``."""
