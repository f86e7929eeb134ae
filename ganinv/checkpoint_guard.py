"""Memory-bomb guards for checkpoints: a file may not declare more memory than it holds.

A few hundred bytes of pickle can declare a storage of terabytes (legacy torch.save files allocate what
they declare before reading it), a tensor whose shape reaches past its storage (torch then grows the
storage), zip records that inflate a thousandfold, or calls such as bytearray(10**12) and
torch.Tensor(10**6, 10**6). check_torch_file() first reads the pickle with stand-ins that allocate
nothing and refuses all of these before torch.load runs; build_checked() keeps a stored config from
describing a model far larger than the weights the file holds.
"""

from __future__ import annotations

import _compat_pickle
import os
import pickle
import threading
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from .errors import CheckpointError

ZIP_MAGIC = b"PK\x03\x04"
TORCH_LEGACY_MAGIC = (
    b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickled 0x1950a86a20f9469cfc6c
)
M = TypeVar("M", bound=nn.Module)

_STORAGE_ITEMSIZE = {
    f"{name}Storage": dtype.itemsize
    for name, dtype in [
        ("Float", torch.float32),
        ("Double", torch.float64),
        ("Half", torch.float16),
        ("BFloat16", torch.bfloat16),
        ("ComplexFloat", torch.complex64),
        ("ComplexDouble", torch.complex128),
        ("Long", torch.int64),
        ("Int", torch.int32),
        ("Short", torch.int16),
        ("Char", torch.int8),
        ("Byte", torch.uint8),
        ("Bool", torch.bool),
        ("Untyped", torch.uint8),
    ]
}
_PLAIN_REBUILDS = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3")
PROBE_SLACK = 2**20  # values a stored config may add beyond twice what the file holds (buffers, w_avg, ...)


class _Refusal(Exception):
    """A file declares more than it holds (the message lacks the path)."""


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else ""


def layout_problem(offset: Any, size: Any, stride: Any, capacity: int) -> str | None:
    """Why a tensor of this layout does not fit a storage of ``capacity`` elements, or None if it does.

    Every element must lie in the storage, and a tensor may not have more elements than its storage holds
    (an expanded, stride-0 view of a few values would become huge at its first copy)."""

    def ints(xs: Any) -> bool:
        return isinstance(xs, (tuple, list)) and all(type(x) is int for x in xs)

    if type(offset) is not int or not ints(size) or not ints(stride) or len(size) != len(stride):
        return f"declares an invalid layout (shape {size!r}, stride {stride!r}, offset {offset!r})"
    if offset < 0 or min(size, default=0) < 0 or min(stride, default=0) < 0:
        return f"declares a negative shape, stride or offset ({list(size)}, {list(stride)}, {offset})"
    if 0 in size:
        return None
    numel = 1
    for n in size:
        numel *= n
    if numel > capacity:
        shown = f"{numel:,}" if numel < 10**30 else f"about 10^{len(str(numel)) - 1}"
        return f"declares shape {list(size)} ({shown} elements) but its storage holds only {capacity:,}"
    extent = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if extent > capacity:
        return (
            f"declares shape {list(size)} with stride {list(stride)} and offset {offset}, reaching element "
            f"{extent:,} of a storage that holds only {capacity:,}"
        )
    return None


class _StorageType:
    """Stand-in for a storage class (``torch.FloatStorage``, ...): its name and element size."""

    def __init__(self, name: str) -> None:
        self.name, self.itemsize = name, _STORAGE_ITEMSIZE.get(name)


class _Storage:
    """A storage as a pickle declares it: record key, bytes, element size, and the key of the storage it is
    a view of (legacy files), if any. Nothing is allocated."""

    def __init__(self, key: str, nbytes: int, itemsize: int, root: str | None = None) -> None:
        self.key, self.nbytes, self.itemsize, self.root = key, nbytes, itemsize, root or key


class _Tensor:
    """A tensor as a pickle declares it, or the reason it is refused outright (``refused``)."""

    def __init__(self, storage=None, offset=0, size=(), stride=(), itemsize=1, refused: str = "") -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.itemsize, self.refused = itemsize, refused

    def problem(self) -> str | None:
        if self.refused:
            return self.refused
        if not isinstance(self.storage, _Storage):
            return f"is built on a {type(self.storage).__name__}, not on a storage record"
        return layout_problem(self.offset, self.size, self.stride, self.storage.nbytes // self.itemsize)


class _Opaque:
    """What any other global becomes in the dry run: it keeps its arguments and state and runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        self = super().__new__(cls)
        self.parts = [args, kwargs]
        return self

    def __setstate__(self, state: Any) -> None:
        self.parts.append(state)

    def append(self, item: Any) -> None:
        self.parts.append(item)

    def extend(self, items: Any) -> None:
        self.parts.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.parts.append((key, value))


class _Dict(dict):
    """Stand-in for OrderedDict / Counter: a dict that also takes attributes (``state_dict._metadata``)."""


def _first(data: Any, *_: Any) -> Any:
    return data


class _DryUnpickler(pickle.Unpickler):
    """Reads a torch pickle without creating a tensor or calling anything real: storages and tensors become
    records of what they declare (``storages``, ``tensors``), other globals harmless stand-ins."""

    def __init__(self, file: Any, file_size: int) -> None:
        super().__init__(file, encoding="utf-8")
        self.file_size = file_size
        self.storages: dict[str, _Storage] = {}
        self.tensors: list[_Tensor] = []

    def find_class(self, module: str, name: str) -> Any:
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
        )  # Python 2 names in protocol-2 pickles (__builtin__.bytearray), as torch.load maps them
        if "Storage" in name:  # in any module, as torch.load does (old CUDA files say torch.cuda)
            return _StorageType(name)
        if module == "torch._utils" and name in _PLAIN_REBUILDS:
            return lambda *args: self._tensor(name, *args)
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _first
        if module == "torch._utils" and name.startswith("_rebuild_"):  # quantized, sparse, meta, ...
            return lambda *_: self._refuse(f"torch._utils.{name}")
        if (module, name) == ("torch._tensor", "_rebuild_from_type_v2"):
            return lambda func, new_type, args, state: func(*args)
        if module in ("torch", "torch.cuda") and name.endswith("Tensor"):  # torch.Tensor(n, m) allocates
            return lambda *_: self._refuse(f"{module}.{name}")
        if module == "torch" and isinstance(vars(torch).get(name), torch.dtype):
            return vars(torch)[name]
        if (module, name) == ("torch", "Size"):
            return tuple
        if (module, name) == ("builtins", "bytearray"):
            return self._bytearray
        if module == "collections" and name in ("OrderedDict", "Counter"):
            return _Dict
        return _Opaque

    def persistent_load(self, pid: Any) -> Any:
        typename = pid[0] if isinstance(pid, tuple) and pid else None
        typename = typename.decode("ascii") if isinstance(typename, bytes) else typename
        if typename == "module":
            return _Opaque()
        if typename != "storage" or len(pid) < 5:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        kind, key, _location, numel = pid[1:5]
        key = key.decode("ascii") if isinstance(key, bytes) else str(key)
        if not isinstance(kind, _StorageType) or kind.itemsize is None:
            name = kind.name if isinstance(kind, _StorageType) else type(kind).__name__
            raise _Refusal(f"declares a storage of unsupported type {name}")
        if type(numel) is not int or numel < 0:
            raise _Refusal(f"declares storage {key!r} with {numel!r} elements")
        storage = self.storages.setdefault(key, _Storage(key, numel * kind.itemsize, kind.itemsize))
        view = pid[5] if len(pid) > 5 else None
        if view is None:
            return storage
        _, offset, count = view  # legacy files: a slice of the root storage
        if type(offset) is not int or type(count) is not int or min(offset, count) < 0:
            raise _Refusal(f"declares an invalid view {view!r} of storage {key!r}")
        if offset + count > storage.nbytes // storage.itemsize:
            raise _Refusal(f"declares a view of storage {key!r} that reaches past its end")
        return _Storage(f"{key}[{offset}:]", count * kind.itemsize, kind.itemsize, root=key)

    def _tensor(self, name: str, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _Tensor:
        itemsize = storage.itemsize if isinstance(storage, _Storage) else 1
        if name == "_rebuild_tensor_v3" and len(rest) >= 3 and isinstance(rest[2], torch.dtype):
            itemsize = rest[2].itemsize  # v3 tensors sit on untyped (byte) storages
        self.tensors.append(_Tensor(storage, offset, size, stride, itemsize))
        return self.tensors[-1]

    def _refuse(self, what: str) -> _Tensor:
        self.tensors.append(_Tensor(refused=f"is made by {what}, which a file of plain tensors never uses"))
        return self.tensors[-1]

    def _bytearray(self, *args: Any) -> _Opaque:
        if args and type(args[0]) is int and args[0] > self.file_size:
            raise _Refusal(f"asks for a bytearray of {args[0]:,} bytes, more than the whole file holds")
        return _Opaque(*args)


def _tensor_names(obj: Any) -> dict[int, str]:
    """``id(tensor record) -> where`` ("g_ema/convs.0.conv.weight") for the records reachable from ``obj``."""
    names: dict[int, str] = {}
    seen: set[int] = set()
    stack = [(obj, "")]
    while stack:  # iterative: a crafted pickle may nest deeper than Python's recursion limit
        item, where = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _Tensor):
            names[id(item)] = where or "<root>"
        elif isinstance(item, dict):
            stack.extend((v, f"{where}/{k}" if where else str(k)) for k, v in reversed(item.items()))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, _Opaque):
            stack.extend((v, where) for v in reversed(item.parts))
    return names


def _check_records(reader: _DryUnpickler, obj: Any, held: Callable[[_Storage], int]) -> None:
    """Every storage must be backed by ``held(storage)`` bytes of the file, every tensor fit its storage."""
    names = _tensor_names(obj)
    owners: dict[str, str] = {}
    for t in reader.tensors:
        if isinstance(t.storage, _Storage):
            owners.setdefault(t.storage.root, names.get(id(t), "<unnamed>"))
    for s in reader.storages.values():
        if s.nbytes != (n := held(s)):
            who = f"tensor {owners[s.key]!r}" if s.key in owners else f"storage record {s.key!r}"
            raise _Refusal(f"{who} declares {s.nbytes:,} bytes of storage but the file holds {n:,} for it")
    for t in reader.tensors:
        if problem := t.problem():
            raise _Refusal(f"tensor {names.get(id(t), '<unnamed>')!r} {problem}")


def _check_zip(f: Any, file_size: int) -> None:
    with zipfile.ZipFile(f) as z:
        infos = {i.filename: i for i in z.infolist()}
        expanded = sum(i.file_size for i in infos.values())
        if expanded > file_size:  # compressed entries: torch.save never writes them
            raise _Refusal(f"its zip entries expand to {expanded:,} bytes from a file of {file_size:,}")
        prefix = next(iter(infos), "").split("/")[0]  # torch reads the folder of the first entry
        if f"{prefix}/data.pkl" not in infos:
            return  # not a torch.save archive: torch.load says what is wrong
        with z.open(f"{prefix}/data.pkl") as pkl:
            reader = _DryUnpickler(pkl, file_size)
            obj = reader.load()

    def held(s: _Storage) -> int:
        info = infos.get(f"{prefix}/data/{s.key}")
        return 0 if info is None else info.file_size

    _check_records(reader, obj, held)


def _check_legacy(f: Any, file_size: int) -> None:
    for _ in range(3):  # magic number, protocol version, system info
        _DryUnpickler(f, file_size).load()
    reader = _DryUnpickler(f, file_size)
    obj = reader.load()
    keys = _DryUnpickler(f, file_size).load()  # then each storage: its element count (8 bytes), its data
    data = file_size - f.tell() - 8 * (len(keys) if isinstance(keys, list) else 0)
    excess = sum(s.nbytes for s in reader.storages.values()) - data
    big = max(reader.storages.values(), key=lambda s: s.nbytes, default=None)  # blamed for any excess
    _check_records(reader, obj, lambda s: max(0, s.nbytes - excess) if s is big and excess > 0 else s.nbytes)


def check_declared(f: Any, file_size: int) -> None:
    """CheckpointError (without the path) when the torch.save stream ``f`` of ``file_size`` bytes declares
    more memory than it holds; other streams are left to torch.load."""
    head = f.read(len(TORCH_LEGACY_MAGIC))
    f.seek(0)
    try:
        if head.startswith(ZIP_MAGIC):
            _check_zip(f, file_size)
        elif head == TORCH_LEGACY_MAGIC:
            _check_legacy(f, file_size)
    except _Refusal as e:
        raise CheckpointError(f"{e}; the file is corrupt or crafted: re-download or re-export it") from None
    except Exception as e:  # truncated zip, bad pickle, ...
        raise CheckpointError(
            f"not a readable checkpoint (truncated or corrupt?): {type(e).__name__}: {_first_line(e)}"
        ) from None


def check_torch_file(path: str | os.PathLike) -> None:
    """Refuse, with a :class:`CheckpointError` naming the file and the tensor, a ``torch.save`` file (zip or
    legacy format) that declares more memory than it holds, before ``torch.load`` allocates any of it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            check_declared(f, os.fstat(f.fileno()).st_size)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _values_held(state_dict: Mapping[str, Any]) -> int:
    """How many values the distinct storages behind ``state_dict``'s tensors hold."""
    seen, total = set(), 0
    for t in state_dict.values():
        if isinstance(t, torch.Tensor):
            s = t.untyped_storage()
            if (s.data_ptr(), s.nbytes()) not in seen:
                seen.add((s.data_ptr(), s.nbytes()))
                total += s.nbytes() // t.element_size()
    return total


class _TooLarge(Exception):
    pass


def _probe(make: Callable[[], Any], limit: int) -> None:
    """Run ``make()`` on the meta device (nothing allocated), counting the parameter and buffer values it
    registers in this thread; _TooLarge as soon as they pass ``limit``."""
    count, thread = 0, threading.get_ident()

    def add(module: nn.Module, name: str, t: Any) -> None:
        nonlocal count
        if isinstance(t, torch.Tensor) and threading.get_ident() == thread:
            count += t.numel()
            if count > limit:
                raise _TooLarge

    registry = nn.modules.module
    hooks = [
        registry.register_module_parameter_registration_hook(add),
        registry.register_module_buffer_registration_hook(add),
    ]
    try:
        with torch.device("meta"):
            make()
    finally:
        for h in hooks:
            h.remove()


def build_checked(
    make: Callable[[], M], state_dict: Mapping[str, Any], source: str | Path, what: str, config: Any = None
) -> M:
    """``make()``, the model a checkpoint's stored (or inferred) ``config`` describes, built only once a dry
    run on the meta device shows that it needs at most twice the values the file's ``state_dict`` holds (plus
    :data:`PROBE_SLACK`): the weights must fill the model, so a far larger one means a config that does not
    belong to them. CheckpointError for such a config and for one the constructor rejects."""
    held = _values_held(state_dict)
    limit = 2 * held + PROBE_SLACK
    shown = "" if config is None else f" {_brief(config)}"
    try:
        _probe(make, limit)
    except _TooLarge:
        raise CheckpointError(
            f"{source}: the stored {what} config{shown} describes a model of more than {limit:,} values, but "
            f"the file holds only {held:,}; the config does not belong to these weights (corrupt or crafted "
            "file?): re-save the checkpoint"
        ) from None
    except Exception as e:  # the constructor's own checks, or sizes torch cannot represent
        raise CheckpointError(
            f"{source}: invalid {what} config{shown}: {type(e).__name__}: {_first_line(e)}"
        ) from None
    try:
        return make()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: invalid {what} config{shown}: {e}") from None


def _brief(config: Any, n: int = 800) -> str:
    text = repr(config)
    return text if len(text) <= n else text[: n - 4] + " ..."
