"""Choice between the pure-PyTorch reference path and the compiled CUDA kernels.

``impl`` is ``"auto"`` (CUDA kernels for CUDA tensors when they build, else reference), ``"ref"`` or
``"cuda"`` (CUDA kernels or an error). Nothing is compiled at import: the first CUDA tensor that reaches an
op triggers the build (see ``_build.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

import torch

_IMPLS = ("auto", "ref", "cuda")
_impl = "auto"


def set_impl(impl: str) -> None:
    """Select the op implementation globally: ``"auto"``, ``"ref"`` or ``"cuda"``."""
    global _impl
    if impl not in _IMPLS:
        raise ValueError(f"unknown op implementation {impl!r}; choose one of {_IMPLS}")
    _impl = impl


def get_impl() -> str:
    return _impl


@contextlib.contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Temporarily select the op implementation (for tests and benchmarks)."""
    old = _impl
    set_impl(impl)
    try:
        yield
    finally:
        set_impl(old)


def cuda_kernels(x: torch.Tensor) -> ModuleType | None:
    """The compiled kernels to use for tensor ``x``, or None for the reference path."""
    if _impl == "ref" or not x.is_cuda:
        if _impl == "cuda" and not x.is_cuda:
            raise RuntimeError("ganinv.ops: impl='cuda' needs CUDA tensors; got a tensor on " + str(x.device))
        return None
    from . import _build

    ext = _build.load_extension()
    if ext is None and _impl == "cuda":
        raise RuntimeError("ganinv.ops: impl='cuda' was requested but the CUDA extension failed to build")
    return ext
