"""Device names as users type them (``--device``, the notebooks' ``DEVICE``), checked before any work."""

from __future__ import annotations

import torch

KNOWN = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str | torch.device, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when a GPU is visible, else ``cpu``; ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` as given. ValueError naming the problem for unknown names and for a GPU that is not there."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"device {spec!r}: expected {KNOWN}")
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"unknown device {spec!r}: use {KNOWN}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"device {spec!r} is not supported by ganinv: use {KNOWN}")
    if not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ValueError(f"device {spec!r}: no CUDA GPU is visible to torch {torch.__version__} ({built}); "
                         "use --device cpu or auto")  # fmt: skip
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def sync(device: torch.device | str) -> None:
    """Wait for the GPU's queued work (timings); nothing on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
