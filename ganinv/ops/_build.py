"""JIT build of the CUDA kernels in ``csrc/`` with ``torch.utils.cpp_extension.load`` (ninja).

Nothing is compiled at import. ``load_extension()`` builds on its first call (the dispatcher calls it when
the first CUDA tensor reaches an op) and remembers the outcome for the rest of the process, a failure
included: a failed build warns once and the ops use the PyTorch reference path from then on.

The module is named ``ganinv_ops_<hash>``, the hash covering the sources and the torch / CUDA / Python
versions, so a changed kernel or a different torch never loads a stale build. It is built in
``$GANINV_CACHE_DIR/torch_extensions/<name>`` (default ``~/.cache/ganinv/torch_extensions/<name>``).
Set ``TORCH_CUDA_ARCH_LIST`` (e.g. ``"8.6"`` or ``"9.0"``) to build for other GPUs than the visible ones,
or on a machine without a GPU.

``--use_fast_math`` is deliberately not used: the kernels are memory-bound, and fast math would flush
float32 denormals to zero and so break bitwise agreement with the reference for tiny values.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

CSRC_DIR = Path(__file__).resolve().parent / "csrc"
SOURCES = ("ganinv_ops.cpp", "fused_bias_act.cu", "upfirdn2d.cu")
_SOURCE_SUFFIXES = (".cpp", ".cu", ".cuh", ".h")
EXTRA_CFLAGS = ["-O3"]
EXTRA_CUDA_CFLAGS = ["-O3"]

_UNSET = object()
_cached: object = _UNSET  # the built module, None after a failed build, or _UNSET before the first try
_lock = threading.Lock()


def source_hash() -> str:
    """Short sha256 of the files in ``csrc/`` (names, contents) and the torch, CUDA and Python versions."""
    digest = hashlib.sha256()
    for path in sorted(CSRC_DIR.iterdir()):
        if path.suffix in _SOURCE_SUFFIXES:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    build_env = f"torch={torch.__version__};cuda={torch.version.cuda};python={sys.version_info[:2]}"
    digest.update(build_env.encode())
    return digest.hexdigest()[:16]


def extension_name() -> str:
    return f"ganinv_ops_{source_hash()}"


def cache_dir() -> Path:
    """Root of ganinv's build cache: ``$GANINV_CACHE_DIR``, else ``~/.cache/ganinv``."""
    root = os.environ.get("GANINV_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "ganinv"


def build_directory(name: str | None = None) -> Path:
    return cache_dir() / "torch_extensions" / (name or extension_name())


def _has_cuda_headers(home: str | None) -> bool:
    return bool(home) and (Path(home) / "include" / "cuda_runtime_api.h").is_file()


def _ensure_cuda_home(cpp_extension: ModuleType) -> None:
    """Make sure torch's idea of the CUDA toolkit points at one with headers.

    Unless ``CUDA_HOME`` is set, torch takes the parent of the directory of the ``nvcc`` on ``PATH``; a
    wrapper script such as ``/usr/local/bin/nvcc`` then yields ``/usr/local``, which has neither the CUDA
    headers nor ``libcudart``. Fall back to ``$CUDA_HOME``, ``$CUDA_PATH`` or ``/usr/local/cuda`` then.
    """
    if _has_cuda_headers(cpp_extension.CUDA_HOME):
        return
    for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if _has_cuda_headers(candidate):
            cpp_extension.CUDA_HOME = candidate
            return
    raise RuntimeError(
        f"no CUDA toolkit with headers was found (torch guessed CUDA_HOME={cpp_extension.CUDA_HOME!r}); "
        "install one (nvcc and the CUDA runtime headers) and set CUDA_HOME to build the ganinv CUDA kernels"
    )


def build_extension(verbose: bool = False) -> ModuleType:
    """Compile (or reuse an up-to-date build of) the CUDA extension and import it; raises on failure.

    Works without a GPU when ``TORCH_CUDA_ARCH_LIST`` names the target architectures. The module imports
    on such a machine too (it links against torch's CUDA libraries), but its functions need CUDA tensors.
    """
    from torch.utils import cpp_extension  # not at module level: keeps `import ganinv` light

    if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        raise RuntimeError(
            "no CUDA GPU is visible, so the target architecture is unknown: set TORCH_CUDA_ARCH_LIST "
            "(e.g. '9.0') to build the ganinv CUDA extension anyway"
        )
    _ensure_cuda_home(cpp_extension)
    name = extension_name()
    directory = build_directory(name)
    directory.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(
        name=name,
        sources=[str(CSRC_DIR / s) for s in SOURCES],
        extra_cflags=EXTRA_CFLAGS,
        extra_cuda_cflags=EXTRA_CUDA_CFLAGS,
        extra_include_paths=[str(CSRC_DIR)],
        build_directory=str(directory),
        verbose=verbose,
        with_cuda=True,
    )


def load_extension() -> ModuleType | None:
    """The compiled kernels, building them on the first call; None without a GPU or after a failed build.

    The outcome is cached for the process: a failed build is not retried, and warns exactly once.
    """
    global _cached
    if _cached is not _UNSET:
        return _cached  # type: ignore[return-value]
    if not torch.cuda.is_available():
        return None
    with _lock:
        if _cached is _UNSET:
            try:
                _cached = build_extension()
            except Exception as err:  # any failure means: fall back to the reference path
                message = f"{type(err).__name__}: {err}".strip()
                if len(message) > 4000:
                    message = message[:4000] + " [...]"
                warnings.warn(
                    "ganinv.ops: building the CUDA extension failed, so the PyTorch reference path is used "
                    f"instead (slower). Run ganinv.ops._build.build_extension(verbose=True) for the full "
                    f"log. Error: {message}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                _cached = None
    return _cached  # type: ignore[return-value]
