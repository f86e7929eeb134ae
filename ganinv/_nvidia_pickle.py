"""Safe reader for NVIDIA stylegan2-ada-pytorch / stylegan3 network pickles (private; see ganinv.checkpoints).

NVIDIA pickles embed the source of their network modules and NVIDIA's loader execs it. This reader never
imports ``torch_utils`` / ``dnnlib`` / ``training`` and never executes ``module_src``: an allow-listed
``pickle.Unpickler`` turns every persistent network object into a :class:`PersistentStub` (class name,
source text, ``__dict__`` state) and refuses every global that is not on the list below. Tensors are then
collected from the stubs' ``_parameters`` / ``_buffers`` / ``_modules`` and renamed to rosinality's layout
(docs/stylegan2.md §2.3-§2.4). Supported: unconditional RGB StyleGAN2 G ('skip') and D ('resnet'); refused
with a CheckpointError: conditional nets, other architectures, StyleGAN3 generators and TensorFlow pickles.
"""

from __future__ import annotations

import collections
import importlib
import io
import math
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from .checkpoint_config import DEFAULT_BLUR, DEFAULT_LR_MLP, _short, blur_from_kernel, fit_channel_table
from .checkpoint_guard import check_declared, layout_problem
from .errors import CheckpointError
from .models.stylegan2 import channel_table

# Constructor argument order, for pickles that recorded positional ``_init_args``.
G_POSITIONAL = tuple("z_dim c_dim w_dim img_resolution img_channels mapping_kwargs synthesis_kwargs".split())
D_POSITIONAL = tuple(
    "c_dim img_resolution img_channels architecture channel_base channel_max num_fp16_res conv_clamp "
    "cmap_dim block_kwargs mapping_kwargs epilogue_kwargs".split()
)
TF_HINT = (
    "TensorFlow StyleGAN2 pickles are not supported; convert it first with NVIDIA stylegan2-ada-pytorch's "
    "`python legacy.py --source=in.pkl --dest=out.pkl` (then load out.pkl) or with rosinality's "
    "convert_weight.py (then load the .pt)"
)


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


class PersistentStub:
    """What a pickled NVIDIA persistent object becomes: its class name, (unexecuted) source and state."""

    def __init__(self, class_name: str, module_src: str, state: Any, version: Any) -> None:
        self.class_name, self.module_src, self.state, self.version = class_name, module_src, state, version

    def __repr__(self) -> str:
        return f"PersistentStub({self.class_name!r})"


def _reconstruct_persistent_obj(meta: Any) -> PersistentStub:
    """Replacement for ``torch_utils.persistence._reconstruct_persistent_obj``: keeps data, runs nothing."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise CheckpointError(
            f"unsupported persistent object record {type(meta).__name__} "
            f"(type {meta.get('type') if isinstance(meta, dict) else None!r})"
        )
    return PersistentStub(
        str(meta.get("class_name")), str(meta.get("module_src", "")), meta.get("state"), meta.get("version")
    )


def _load_storage_bytes(b: bytes) -> Any:
    """Replacement for ``torch.storage._load_from_bytes`` that reads with ``weights_only=True``, once
    ``check_declared`` has made sure the record declares no more memory than its bytes hold."""
    if not isinstance(b, (bytes, bytearray)):
        raise CheckpointError(f"storage record is a {type(b).__name__}, not bytes")
    try:
        check_declared(io.BytesIO(b), len(b))
    except CheckpointError as e:
        raise CheckpointError(f"a storage record: {e}") from None
    return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)


class RefusedTensor:
    """What a tensor that does not fit its storage becomes; :func:`state_dict_of` reports it by name."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _storage_elements(storage: Any) -> int:
    """Elements of a (typed or untyped) storage, without torch's TypedStorage deprecation warnings."""
    if isinstance(storage, torch.UntypedStorage):
        return storage.nbytes()
    if isinstance(storage, torch.storage.TypedStorage):
        return storage._untyped_storage.nbytes() // storage.dtype.itemsize
    raise CheckpointError(f"a tensor is built on a {type(storage).__name__}, not on a storage")


def _checked_rebuild(name: str) -> Any:
    """``torch._utils.<name>`` that first checks the tensor lies within its storage (torch would grow a
    too small storage to fit the declared shape, allocating whatever the pickle asks for)."""
    rebuild = getattr(torch._utils, name)

    def checked(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> Any:
        problem = layout_problem(offset, size, stride, _storage_elements(storage))
        return RefusedTensor(problem) if problem else rebuild(storage, offset, size, stride, *rest)

    return checked


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    return data if isinstance(data, RefusedTensor) else torch._utils._rebuild_parameter(data, *rest)


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, restricted to text codecs."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise CheckpointError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode(encoding)


def _numpy_scalar() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray").scalar
    except ImportError:
        return importlib.import_module("numpy.core.multiarray").scalar


def _allowed(module: str, name: str) -> Any:
    """The object a pickle may reference as ``module.name``, or None when it is refused."""
    key = (module, name)
    if key == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
        return _reconstruct_persistent_obj
    if key in (("dnnlib.util", "EasyDict"), ("dnnlib", "EasyDict")):
        return EasyDict
    if key == ("torch.storage", "_load_from_bytes"):
        return _load_storage_bytes
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
        return _checked_rebuild(name)
    if key == ("torch._utils", "_rebuild_parameter"):
        return _rebuild_parameter
    if key == ("torch", "Size"):
        return torch.Size
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    if key == ("collections", "OrderedDict"):
        return collections.OrderedDict
    if key == ("_codecs", "encode"):  # bytes in protocol-2 pickles
        return _codecs_encode
    if key == ("numpy", "dtype"):
        return importlib.import_module("numpy").dtype
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
        return _numpy_scalar()
    return None


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals (see :func:`_allowed`)."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("dnnlib.tflib"):
            raise CheckpointError(TF_HINT)
        obj = _allowed(module, name)
        if obj is None:
            raise CheckpointError(
                f"refusing to load global {module}.{name} from pickle: only NVIDIA StyleGAN2 "
                "network pickles holding tensors are supported (this file may contain code)"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("pickle uses persistent ids (a torch.save file in the legacy format?)")


def read(path: Path) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler`; errors become CheckpointError naming the file."""
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f).load()
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # truncated or garbage
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {type(e).__name__}: {e}"
        ) from None


def state_dict_of(stub: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Persistent parameters and buffers of a pickled module tree, with dotted names (= its state_dict)."""
    state = stub.state if isinstance(stub, PersistentStub) else None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{prefix.rstrip('.') or 'network'} is a {type(stub).__name__}, not a pickled NVIDIA module"
        )
    out: dict[str, torch.Tensor] = {}
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, t in (state.get(group) or {}).items():
            if t is None or (group == "_buffers" and name in skip):
                continue
            if isinstance(t, RefusedTensor):
                raise CheckpointError(
                    f"tensor {prefix + name!r} {t.problem}; the file is corrupt or crafted: re-download it"
                )
            if not isinstance(t, torch.Tensor):
                raise CheckpointError(f"{prefix}{name} is a {type(t).__name__}, not a tensor")
            out[prefix + name] = t.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(state_dict_of(child, f"{prefix}{name}."))
    return out


def _kwargs(stub: PersistentStub, positional: tuple[str, ...]) -> dict:
    kw = dict(zip(positional, stub.state.get("_init_args") or ()))
    kw.update(stub.state.get("_init_kwargs") or {})
    return kw


def _channel_config(size: int, cbase: Any, cmax: Any, table: dict[int, int], what: str) -> tuple[float, int]:
    """(channel_multiplier, channel_max) from channel_base / channel_max, else from the tensor shapes."""
    if cbase is None or cmax is None:
        try:
            return fit_channel_table(size, table)
        except CheckpointError as e:
            raise CheckpointError(f"{what}: {e}") from None
    cm = cbase / 16384
    cm = int(cm) if cm.is_integer() else cm
    nvidia = {2**i: min(cbase // 2**i, cmax) for i in range(2, int(math.log2(size)) + 1)}
    if channel_table(size, cm, cmax) != nvidia:
        raise CheckpointError(
            f"{what}: channel_base {cbase}, channel_max {cmax} give channels {nvidia}, which "
            "ganinv's channel table cannot reproduce"
        )
    return cm, int(cmax)


class _Taker:
    """Pops NVIDIA tensors by name; missing required ones raise CheckpointError."""

    def __init__(self, sd: dict[str, torch.Tensor], what: str) -> None:
        self.src, self.what = dict(sd), what

    def __call__(self, key: str, optional: bool = False) -> torch.Tensor | None:
        if key not in self.src and not optional:
            raise CheckpointError(f"missing {key!r} in the pickled {self.what}")
        return self.src.pop(key, None)

    def check_consumed(self) -> None:
        left = [k for k in self.src if not k.endswith("resample_filter")]
        if left:
            raise CheckpointError(f"unrecognised tensors in the pickled {self.what}: {_short(sorted(left))}")


def convert_generator(stub: PersistentStub, what: str = "G_ema") -> dict:
    """{"config", "state_dict", "w_avg"} of a pickled StyleGAN2 generator (refuses other variants)."""
    nv = state_dict_of(stub)
    kw = _kwargs(stub, G_POSITIONAL)
    syn = dict(kw.get("synthesis_kwargs") or {})

    def opt(name: str, default: Any) -> Any:  # ada: synthesis_kwargs; stylegan3: flattened at top level
        return syn.get(name, kw.get(name, default))

    if "stylegan3" in stub.class_name or any(
        k.startswith("synthesis.input.") or re.match(r"synthesis\.L\d+_", k) for k in nv
    ):
        raise CheckpointError(
            f"{what} is a StyleGAN3 (T/R) generator ({stub.class_name}); only StyleGAN2 "
            "generators are supported"
        )
    if not stub.class_name.endswith("Generator") or "synthesis.b4.const" not in nv:
        raise CheckpointError(f"{what} ({stub.class_name}) is not a StyleGAN2 generator")
    if kw.get("c_dim", 0) or any(k.startswith("mapping.embed.") for k in nv):
        raise CheckpointError(
            f"{what} is conditional (c_dim={kw.get('c_dim')}); only unconditional generators are supported"
        )
    if kw.get("img_channels", 3) != 3:
        raise CheckpointError(f"{what} has img_channels={kw.get('img_channels')}; only RGB is supported")
    if opt("architecture", "skip") != "skip":
        raise CheckpointError(
            f"{what} uses architecture {opt('architecture', 'skip')!r}; only 'skip' "
            "generators have a rosinality/ganinv equivalent"
        )
    fc0 = nv.get("mapping.fc0.weight", torch.empty(512, 512))
    z_dim, w_dim = kw.get("z_dim", fc0.shape[1]), kw.get("w_dim", fc0.shape[0])
    if z_dim != w_dim:
        raise CheckpointError(f"{what} has z_dim {z_dim} != w_dim {w_dim}; ganinv needs them equal")
    size = int(
        kw.get("img_resolution")
        or max(int(m.group(1)) for k in nv if (m := re.match(r"synthesis\.b(\d+)\.", k)))
    )
    table = {
        r: nv[f"synthesis.b{r}.conv1.weight"].shape[0]
        for r in (2**i for i in range(2, int(math.log2(size)) + 1))
    }
    cm, cmax = _channel_config(size, opt("channel_base", None), opt("channel_max", None), table, what)
    n_mlp = len({k for k in nv if re.fullmatch(r"mapping\.fc\d+\.weight", k)})
    lr_mlp = (kw.get("mapping_kwargs") or {}).get("lr_multiplier", DEFAULT_LR_MLP)
    filt = nv.get("synthesis.b8.conv0.resample_filter")
    blur = DEFAULT_BLUR if filt is None else blur_from_kernel(filt)

    take, out = _Taker(nv, what), {}
    w_avg = take("mapping.w_avg", optional=True)
    for i in range(n_mlp):
        for p in ("weight", "bias"):
            out[f"style.{i + 1}.{p}"] = take(f"mapping.fc{i}.{p}")
    out["input.input"] = take("synthesis.b4.const").unsqueeze(0)

    def layer(src: str, dst: str, noise: int) -> None:
        out[f"{dst}.conv.weight"] = take(f"{src}.weight").unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = take(f"{src}.affine.weight")
        out[f"{dst}.conv.modulation.bias"] = take(f"{src}.affine.bias")
        out[f"{dst}.noise.weight"] = take(f"{src}.noise_strength").reshape(1)
        out[f"{dst}.activate.bias"] = take(f"{src}.bias")
        if (c := take(f"{src}.noise_const", optional=True)) is not None:
            out[f"noises.noise_{noise}"] = c[None, None]

    def torgb(src: str, dst: str) -> None:
        out[f"{dst}.conv.weight"] = take(f"{src}.weight").unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = take(f"{src}.affine.weight")
        out[f"{dst}.conv.modulation.bias"] = take(f"{src}.affine.bias")
        out[f"{dst}.bias"] = take(f"{src}.bias").view(1, -1, 1, 1)

    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for k in range(int(math.log2(size)) - 2):
        b = f"synthesis.b{2 ** (k + 3)}"
        layer(f"{b}.conv0", f"convs.{2 * k}", 2 * k + 1)
        layer(f"{b}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        torgb(f"{b}.torgb", f"to_rgbs.{k}")
        # NVIDIA filters sum to 1 and apply the up-sampling gain 4 inside; ours carry it in the kernel.
        if (f := take(f"{b}.conv0.resample_filter", optional=True)) is not None:
            out[f"convs.{2 * k}.conv.blur.kernel"] = f * 4
        if (f := take(f"{b}.resample_filter", optional=True)) is not None:
            out[f"to_rgbs.{k}.upsample.kernel"] = f * 4
    take.check_consumed()
    config = dict(
        size=size,
        style_dim=int(w_dim),
        n_mlp=n_mlp,
        channel_multiplier=cm,
        channel_max=int(cmax),
        blur_kernel=list(blur),
        lr_mlp=float(lr_mlp),
    )
    return {"config": config, "state_dict": out, "w_avg": None if w_avg is None else w_avg.float()}


def convert_discriminator(stub: PersistentStub, what: str = "D") -> dict:
    """{"config", "state_dict", "w_avg": None} of a pickled StyleGAN2 'resnet' discriminator."""
    nv = state_dict_of(stub)
    kw = _kwargs(stub, D_POSITIONAL)
    if not stub.class_name.endswith("Discriminator"):
        raise CheckpointError(f"{what} ({stub.class_name}) is not a StyleGAN2 discriminator")
    if kw.get("c_dim", 0) or any(k.startswith("mapping.") for k in nv):
        raise CheckpointError(
            f"{what} is conditional (c_dim={kw.get('c_dim')}); only unconditional "
            "discriminators are supported"
        )
    if kw.get("img_channels", 3) != 3:
        raise CheckpointError(f"{what} has img_channels={kw.get('img_channels')}; only RGB is supported")
    if kw.get("architecture", "resnet") != "resnet":
        raise CheckpointError(
            f"{what} uses architecture {kw.get('architecture')!r}; only 'resnet' "
            "discriminators have a rosinality/ganinv equivalent"
        )
    epi = kw.get("epilogue_kwargs") or {}
    group, n_ch = epi.get("mbstd_group_size", 4), epi.get("mbstd_num_channels", 1)
    if n_ch != 1 or not isinstance(group, int) or group < 1:
        raise CheckpointError(
            f"{what}: minibatch-std group {group!r} / {n_ch!r} channels unsupported "
            "(ganinv: an integer group size and 1 channel)"
        )
    size = int(
        kw.get("img_resolution") or max(int(m.group(1)) for k in nv if (m := re.match(r"b(\d+)\.", k)))
    )
    table = {size >> j: nv[f"b{size >> j}.conv0.weight"].shape[0] for j in range(int(math.log2(size)) - 2)}
    table[4] = nv["b4.conv.weight"].shape[0]
    cm, cmax = _channel_config(size, kw.get("channel_base"), kw.get("channel_max"), table, what)
    filt = nv.get(f"b{size}.conv1.resample_filter")
    blur = DEFAULT_BLUR if filt is None else blur_from_kernel(filt)

    take, out = _Taker(nv, what), {}

    def copy(src: str, weight: str, bias: str | None) -> None:
        out[weight] = take(f"{src}.weight")
        if bias is not None:
            out[bias] = take(f"{src}.bias")

    copy(f"b{size}.fromrgb", "convs.0.0.weight", "convs.0.1.bias")
    for j in range(1, int(math.log2(size)) - 1):  # block j works at resolution size / 2^(j-1)
        b, c = f"b{size >> (j - 1)}", f"convs.{j}"
        copy(f"{b}.conv0", f"{c}.conv1.0.weight", f"{c}.conv1.1.bias")
        copy(f"{b}.conv1", f"{c}.conv2.1.weight", f"{c}.conv2.2.bias")
        copy(f"{b}.skip", f"{c}.skip.1.weight", None)
        if (f := take(f"{b}.conv1.resample_filter", optional=True)) is not None:
            out[f"{c}.conv2.0.kernel"] = f  # down-sampling: gain 1 in both codes
        if (f := take(f"{b}.skip.resample_filter", optional=True)) is not None:
            out[f"{c}.skip.0.kernel"] = f
    copy("b4.conv", "final_conv.0.weight", "final_conv.1.bias")
    copy("b4.fc", "final_linear.0.weight", "final_linear.0.bias")
    copy("b4.out", "final_linear.1.weight", "final_linear.1.bias")
    take.check_consumed()
    config = dict(
        size=size, channel_multiplier=cm, channel_max=int(cmax), blur_kernel=list(blur), stddev_group=group
    )
    return {"config": config, "state_dict": out, "w_avg": None}


def load(path: Path, which: tuple[str, ...] = ("G_ema", "G", "D"), first: bool = False) -> dict[str, dict]:
    """Convert the networks named in ``which`` that the pickle holds (only the first found if ``first``)."""
    data = read(path)
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path}: a pickled {type(data).__name__}, not an NVIDIA network snapshot dict (keys G, D, G_ema)"
        )
    found = {k: data[k] for k in which if isinstance(data.get(k), PersistentStub)}
    if not found:
        raise CheckpointError(
            f"{path}: no {' / '.join(which)} network in this pickle (keys: {_short(sorted(map(str, data)))})"
        )
    if first:
        found = dict([next(iter(found.items()))])
    out = {}
    for name, stub in found.items():
        convert = convert_discriminator if name == "D" else convert_generator
        try:
            out[name] = convert(stub, name)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
        except Exception as e:  # missing tensors, odd records: a malformed or unknown network
            raise CheckpointError(
                f"{path}: {name} ({stub.class_name}) is not a StyleGAN2 network ganinv can convert: "
                f"{type(e).__name__}: {e}"
            ) from None
    return out
