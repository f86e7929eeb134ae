"""Memory bombs: tiny checkpoint files whose tensors, storages or stored configs declare gigabytes or
terabytes. Every loader must refuse them with a CheckpointError naming the file and the problem, quickly and
without a large allocation: each test runs under an address-space cap of 2 GiB above the process's size, so a
loader that tried to allocate what a file declares would fail with MemoryError / RuntimeError instead.

The files are written here: through torch.save where torch can express the bomb, otherwise by a small
writer of the torch.save formats (zip and legacy) whose output torch.load reads back (the control tests)."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import time
import warnings
import zipfile
from pathlib import Path

try:
    import resource
except ImportError:  # not on Windows: the tests run without the cap
    resource = None

import pytest
import torch

from ganinv.checkpoints import (
    CheckpointError,
    check_torch_file,
    load_checkpoint,
    load_discriminator,
    load_generator,
    save_checkpoint,
)
from ganinv.editing import load_directions
from ganinv.models.clcae import CLCAE, CLCAEConfig, load_clcae
from ganinv.models.contrastive import ContrastiveAligner, ContrastiveModelConfig, load_contrastive
from ganinv.models.encoders import EncoderConfig, PSPEncoder, WPlusEncoderConfig, load_encoder
from ganinv.models.inpainting import Inpainter, InpaintingConfig, load_inpainter
from ganinv.models.sfn import SFN, SFNConfig, load_sfn
from ganinv.models.stylegan2 import Discriminator, Generator

pytestmark = pytest.mark.usefixtures("one_thread")

TB = 10**12 // 4  # float32 elements in a terabyte
GB8 = 2 * 10**9  # float32 elements in 8 GB (beyond the 2 GiB cap, within reach of a machine's swap)
QUICK_S = 5.0  # every refusal comes faster than this (the first meta-device dry run imports torch._dynamo)


@pytest.fixture(autouse=True)
def memory_cap():
    """RLIMIT_AS at the current address-space size + 2 GiB for the test (Linux), restored afterwards."""
    status = Path("/proc/self/status")
    if resource is None or not status.exists():
        yield
        return
    vm_kb = next(
        int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmSize")
    )
    old = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm_kb * 1024 + 2 * 2**30
    if old[1] != resource.RLIM_INFINITY:
        cap = min(cap, old[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def refused(load, path: Path, match: str) -> None:
    """``load(path)`` raises a CheckpointError naming ``path`` and matching ``match``, within QUICK_S."""
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)
    assert time.perf_counter() - start < QUICK_S


# ---------------------------------------------------------------------------------------------------------
# A writer of the torch.save formats that can declare what torch.save never would


class Storage:
    """A storage record as the pickle declares it: key, element count and storage class."""

    def __init__(self, key: str, numel: int, cls: type = torch.FloatStorage) -> None:
        self.key, self.numel, self.cls = key, numel, cls


class Call:
    """Pickles as ``fn(*args)``."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def tensor(storage: Storage, size, stride=None, offset: int = 0) -> Call:
    """A tensor record on ``storage`` (contiguous stride unless given)."""
    if stride is None:
        stride = [1] * len(size)
        for i in range(len(size) - 2, -1, -1):
            stride[i] = stride[i + 1] * size[i + 1]
    return Call(
        torch._utils._rebuild_tensor_v2,
        storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict(),
    )  # fmt: skip


class _Pickler(pickle.Pickler):
    def __init__(self, f, legacy: bool) -> None:
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", obj.cls, obj.key, "cpu", obj.numel)
            return pid + (None,) if self.legacy else pid
        return None


STORAGE_CLASS = {
    torch.float32: torch.FloatStorage,
    torch.float16: torch.HalfStorage,
    torch.int64: torch.LongStorage,
}


def encode(obj, records: dict[str, bytes]):
    """``obj`` with every real tensor replaced by a record of it (its bytes go to ``records``)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().contiguous()
        key = f"t{len(records)}"
        records[key] = t.numpy().tobytes()
        return tensor(Storage(key, t.numel(), STORAGE_CLASS[t.dtype]), list(t.shape))
    if isinstance(obj, dict):
        return {k: encode(v, records) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(encode(v, records) for v in obj)
    return obj


def write_zip(path: Path, obj, records: dict[str, bytes] | None = None, compress: bool = False) -> Path:
    """The zip format of torch.save; ``records`` adds raw storage records by key."""
    records = dict(records or {})
    body = io.BytesIO()
    _Pickler(body, legacy=False).dump(encode(obj, records))
    kind = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", body.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, data in records.items():
            z.writestr(f"archive/data/{key}", data, compress_type=kind)
        z.writestr("archive/version", "3\n")
    return path


def legacy_bytes(obj, records: dict[str, bytes] | None = None) -> bytes:
    """The legacy (pre-zip) format of torch.save: header pickles, the object, keys, then raw storages."""
    records = dict(records or {})
    out = io.BytesIO()
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    for head in (0x1950A86A20F9469CFC6C, 1001, info):
        pickle.dump(head, out, protocol=2)
    _Pickler(out, legacy=True).dump(encode(obj, records))
    pickle.dump(list(records), out, protocol=2)
    for data in records.values():  # every record here is float32: element count, then the bytes
        out.write(struct.pack("<q", len(data) // 4) + data)
    return out.getvalue()


def ganinv_file(kind: str, model: torch.nn.Module, **replace) -> dict:
    """The dict a ganinv checkpoint of ``model`` holds, with state-dict entries replaced."""
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("G.")}
    return {
        "format": "ganinv",
        "version": 1,
        "kind": kind,
        "config": model.config,
        "state_dict": {**sd, **replace},
    }


# ---------------------------------------------------------------------------------------------------------
# Tiny models (a few channels, 32 px)


def tiny_g(**kw) -> Generator:
    torch.manual_seed(0)
    G = Generator(
        **{"size": 32, "style_dim": 16, "n_mlp": 2, "channel_multiplier": 0.125, "channel_max": 16, **kw}
    )
    G.get_w_avg()
    return G.eval()


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    G = tiny_g()
    tiny = EncoderConfig.preset("tiny")
    return {
        "generator": G,
        "discriminator": Discriminator(32, channel_multiplier=0.125, channel_max=16),
        "sfn": SFN(SFNConfig(widths=(4, 8), hidden=16, embed_dim=8)),
        "psp_encoder": PSPEncoder(WPlusEncoderConfig(backbone=tiny, n_latent=G.n_latent, style_dim=16)),
        "contrastive": ContrastiveAligner(
            ContrastiveModelConfig(backbone=tiny, style_dim=16, latent_blocks=1, latent_ffn=32, embed_dim=8)
        ),
        "clcae": CLCAE(CLCAEConfig.for_generator(G, backbone="tiny")),
        "inpainter": Inpainter(G, InpaintingConfig.for_generator(G, "tiny")),
    }


def loader(kind: str, G: Generator):
    return {
        "generator": load_generator,
        "discriminator": load_discriminator,
        "sfn": load_sfn,
        "psp_encoder": lambda p: load_encoder(p, "psp_encoder"),
        "contrastive": load_contrastive,
        "clcae": load_clcae,
        "inpainter": lambda p: load_inpainter(p, G=G),
        "directions": load_directions,
        "checkpoint": load_checkpoint,
        "check_torch_file": check_torch_file,
    }[kind]


# ---------------------------------------------------------------------------------------------------------
# The writer is faithful: without a bomb its files load


def test_control_files_written_here_load(tmp_path, models):
    G = models["generator"]
    for name, data in [("zip", None), ("legacy", legacy_bytes(ganinv_file("generator", G)))]:
        path = tmp_path / f"{name}.pt"
        if data is None:
            write_zip(path, ganinv_file("generator", G))
        else:
            path.write_bytes(data)
        H = load_generator(path)
        for k, v in G.state_dict().items():
            assert torch.equal(H.state_dict()[k], v), (name, k)


# ---------------------------------------------------------------------------------------------------------
# Tensors and storages that declare more than the file holds (a generator file; every loader below)


def expanded(numel: int) -> torch.Tensor:
    return torch.zeros(1).expand(numel)  # stride 0: torch.save stores one value


GEN_BOMBS = {
    # torch.save itself writes these: a view that repeats one value 10**12 times
    "torch.save expanded view": (
        lambda: {"input.input": torch.zeros(1).expand(10**6, 10**6)},
        None,
        r"tensor 'state_dict/input\.input' declares shape \[1000000, 1000000\] "
        r"\(1,000,000,000,000 elements\) but its storage holds only 1",
    ),
    "torch.save expanded fp16 view": (  # loaders cast fp16 to fp32: a 4 TB copy
        lambda: {"input.input": torch.zeros(1, dtype=torch.float16).expand(10**6, 10**6)},
        None,
        r"tensor 'state_dict/input\.input' declares shape \[1000000, 1000000\] .* holds only 1;",
    ),
    "shape past storage": (
        lambda: {"input.input": tensor(Storage("bomb", 4), [10**6, 10**6])},
        {"bomb": bytes(16)},
        r"tensor 'state_dict/input\.input' declares shape \[1000000, 1000000\] .* holds only 4;",
    ),
    "8 GB shape past storage": (
        lambda: {"input.input": tensor(Storage("bomb", 4), [GB8])},
        {"bomb": bytes(16)},
        r"declares shape \[2000000000\] \(2,000,000,000 elements\) but its storage holds only 4",
    ),
    "stride past storage": (
        lambda: {"input.input": tensor(Storage("bomb", 4), [4], [10**9])},
        {"bomb": bytes(16)},
        r"declares shape \[4\] with stride \[1000000000\] and offset 0, reaching element 3,000,000,001",
    ),
    "offset past storage": (
        lambda: {"input.input": tensor(Storage("bomb", 4), [4], [1], 10**12)},
        {"bomb": bytes(16)},
        r"with stride \[1\] and offset 1000000000000, reaching element 1,000,000,000,004 of a storage",
    ),
    "negative stride": (
        lambda: {"input.input": tensor(Storage("bomb", 4), [4], [-1])},
        {"bomb": bytes(16)},
        r"declares a negative shape, stride or offset \(\[4\], \[-1\], 0\)",
    ),
    "storage larger than its record": (
        lambda: {"input.input": tensor(Storage("bomb", TB), [4])},
        {"bomb": bytes(16)},
        r"tensor 'state_dict/input\.input' declares 1,000,000,000,000 bytes of storage but the file holds 16",
    ),
    "missing record": (
        lambda: {"input.input": tensor(Storage("gone", 4), [4])},
        {},
        r"declares 16 bytes of storage but the file holds 0 for it",
    ),
    "bytearray(10**12)": (
        lambda: {"input.input": Call(bytearray, 10**12)},
        None,
        r"asks for a bytearray of 1,000,000,000,000 bytes, more than the whole file holds",
    ),
    "torch.Tensor(n, m)": (
        lambda: {"input.input": Call(torch.Tensor, 50_000, 50_000)},
        None,
        r"tensor 'state_dict/input\.input' is made by torch\.Tensor, which a file of plain tensors never "
        r"uses",
    ),
    "meta tensor": (
        lambda: {
            "input.input": Call(
                torch._utils._rebuild_meta_tensor_no_storage, torch.float32, (10**6, 10**6), (10**6, 1), False
            )
        },
        None,
        r"is made by torch\._utils\._rebuild_meta_tensor_no_storage",
    ),
}


@pytest.mark.parametrize("bomb", list(GEN_BOMBS))
def test_generator_tensor_bombs(tmp_path, models, bomb):
    make, records, match = GEN_BOMBS[bomb]
    obj = ganinv_file("generator", models["generator"], **make())
    path = tmp_path / "g.pt"
    if records is None and bomb.startswith("torch.save"):
        torch.save(obj, path)
    else:
        write_zip(path, obj, records)
    assert path.stat().st_size < 200_000
    refused(load_generator, path, match + ".*the file is corrupt or crafted")


def test_compressed_records_are_refused(tmp_path, models):
    """A zip entry of 8 MB of zeros deflates to a few KB; torch.load would inflate it (1000:1 and more)."""
    n = 2 * 2**20
    obj = ganinv_file("generator", models["generator"], **{"input.input": tensor(Storage("z", n), [n])})
    path = write_zip(tmp_path / "zip.pt", obj, {"z": bytes(4 * n)}, compress=True)
    refused(load_generator, path, r"its zip entries expand to [\d,]+ bytes from a file of [\d,]+")


@pytest.mark.parametrize("numel,match", [(TB, "1,000,000,000,000"), (GB8, "8,000,000,000")])
def test_legacy_file_declaring_a_huge_storage(tmp_path, models, numel, match):
    """Legacy torch.save files: torch.load allocates each declared storage before reading it."""
    obj = ganinv_file(
        "generator", models["generator"], **{"input.input": tensor(Storage("bomb", numel), [4])}
    )
    path = tmp_path / "legacy.pt"
    path.write_bytes(legacy_bytes(obj, {"bomb": bytes(16)}))
    refused(load_generator, path, rf"tensor 'state_dict/input\.input' declares {match} bytes of storage")


def test_legacy_file_with_a_shape_past_its_storage(tmp_path, models):
    """Legacy storages are resizable: torch would grow the 4-value storage to the declared shape."""
    obj = ganinv_file("generator", models["generator"], **{"input.input": tensor(Storage("s", 4), [GB8])})
    path = tmp_path / "legacy.pt"
    path.write_bytes(legacy_bytes(obj, {"s": bytes(16)}))
    refused(load_generator, path, r"declares shape \[2000000000\] .* holds only 4")


def test_rosinality_kernel_bomb(tmp_path, models):
    """A rosinality file whose blur kernel repeats one value: config inference would make it float64."""
    sd = dict(models["generator"].state_dict())
    sd["convs.0.conv.blur.kernel"] = torch.zeros(1).expand(10**5, 10**5)
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(16)}, tmp_path / "rosinality.pt")
    refused(
        load_generator, tmp_path / "rosinality.pt", r"tensor 'g_ema/convs\.0\.conv\.blur\.kernel' declares"
    )


LOADERS = [
    "discriminator",
    "sfn",
    "psp_encoder",
    "contrastive",
    "clcae",
    "inpainter",
    "directions",
    "checkpoint",
    "check_torch_file",
]


@pytest.mark.parametrize("kind", LOADERS)
def test_every_loader_checks_tensors(tmp_path, models, kind):
    G = models["generator"]
    if kind == "directions":
        obj = {
            "format": "ganinv",
            "version": 1,
            "kind": "directions",
            "config": {"style_dim": 16, "names": ["a"]},
        }
        obj.update(state_dict={"a": torch.zeros(1).expand(10**6, 10**6)}, meta={"a": {}})
    else:
        model = models.get(kind, models["generator"])
        first = next(iter(ganinv_file(kind, model)["state_dict"]))
        obj = ganinv_file(kind if kind in models else "generator", model, **{first: expanded(10**12)})
    torch.save(obj, tmp_path / "bomb.pt")
    refused(
        loader(kind, G),
        tmp_path / "bomb.pt",
        r"tensor 'state_dict/.*' declares shape \[.*\] .* holds only 1;",
    )


# ---------------------------------------------------------------------------------------------------------
# Stored configs that describe a model far larger than the file's weights


CONFIG_BOMBS = [
    ("generator", {"style_dim": 10**9}),
    ("generator", {"size": 2**20}),
    ("generator", {"n_mlp": 10**6}),
    ("generator", {"channel_multiplier": 10**6, "channel_max": 10**6}),
    ("discriminator", {"channel_multiplier": 10**4, "channel_max": 10**5}),
    ("sfn", {"hidden": 10**8}),
    ("psp_encoder", {"style_dim": 10**8}),
    ("contrastive", {"latent_ffn": 10**9}),
    ("clcae", {"ffn_mult": 10**6}),
    ("inpainter", {"mix_hidden": 10**8}),
]


@pytest.mark.parametrize("kind,change", CONFIG_BOMBS, ids=[f"{k}-{'-'.join(c)}" for k, c in CONFIG_BOMBS])
def test_config_bombs(tmp_path, models, kind, change):
    model = models[kind]
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("G.")}
    save_checkpoint(tmp_path / "big.pt", kind, {**model.config, **change}, sd)
    assert (tmp_path / "big.pt").stat().st_size < 2_000_000
    name = next(iter(change))
    refused(
        loader(kind, models["generator"]),
        tmp_path / "big.pt",
        rf"the stored \w+ config .*'{name}': {change[name]}.* describes a model of more than [\d,]+ values, "
        r"but the file holds only [\d,]+; the config does not belong to these weights",
    )


def test_config_sizes_torch_cannot_represent(tmp_path, models):
    G = models["generator"]
    save_checkpoint(tmp_path / "huge.pt", "generator", {**G.config, "style_dim": 10**30}, G.state_dict())
    refused(
        load_generator, tmp_path / "huge.pt", r"invalid Generator config .*'style_dim': 10{30}.*: \w+Error"
    )


def test_matching_config_still_loads(tmp_path, models):
    """The size check leaves room for what files may lack (noise buffers) and non-persistent buffers."""
    G = models["generator"]
    sd = {k: v for k, v in G.state_dict().items() if not k.startswith("noises.")}
    torch.save({"g_ema": sd}, tmp_path / "no_noise.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        H = load_generator(tmp_path / "no_noise.pt")
    assert all(torch.equal(H.state_dict()[k], v) for k, v in sd.items())


def test_save_checkpoint_writes_expanded_views_densely(tmp_path, models):
    """Loaders refuse tensors with more elements than their storage; ganinv's own writer never makes one."""
    G = models["generator"]
    sd = {**G.state_dict(), "input.input": torch.ones(1).expand(*G.input.input.shape)}
    save_checkpoint(tmp_path / "g.pt", "generator", G.config, sd, latent_avg=torch.zeros(1).expand(16))
    H = load_generator(tmp_path / "g.pt")
    assert torch.equal(H.input.input, torch.ones_like(G.input.input)) and torch.equal(
        H.w_avg, torch.zeros(16)
    )


# ---------------------------------------------------------------------------------------------------------
# NVIDIA network pickles (built with the helpers of test_checkpoints, which need no NVIDIA code)


def nvidia_helpers():
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import test_checkpoints as tc
    finally:
        sys.path.pop(0)
    return tc


def test_nvidia_tensor_past_its_storage(tmp_path):
    tc = nvidia_helpers()
    G, D = tc.make_g(), tc.make_d()
    snap = tc.nvidia_snapshot(G, D)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation
        storage = torch.zeros(4).storage()
    bomb = Call(torch._utils._rebuild_tensor_v2, storage, 0, (GB8,), (1,), False, collections.OrderedDict())
    snap["G_ema"].state["_modules"]["synthesis"].state["_modules"]["b4"].state["_parameters"]["const"] = bomb
    tc.dump_with_fake_modules(snap, tmp_path / "net.pkl")
    refused(
        load_generator,
        tmp_path / "net.pkl",
        r"tensor 'synthesis\.b4\.const' declares shape \[2000000000\] \(2,000,000,000 elements\) but its "
        r"storage holds only 4",
    )


def test_nvidia_storage_record_declaring_a_terabyte(tmp_path):
    tc = nvidia_helpers()
    G, D = tc.make_g(), tc.make_d()
    snap = tc.nvidia_snapshot(G, D)
    storage = Call(torch.storage._load_from_bytes, legacy_bytes(Storage("0", TB), {"0": bytes(16)}))
    bomb = Call(torch._utils._rebuild_tensor_v2, storage, 0, (4,), (1,), False, collections.OrderedDict())
    snap["D"].state["_modules"]["b4"].state["_modules"]["out"].state["_parameters"]["bias"] = bomb
    tc.dump_with_fake_modules(snap, tmp_path / "net.pkl")
    refused(
        load_discriminator,
        tmp_path / "net.pkl",
        r"a storage record: storage record '0' declares 1,000,000,000,000 bytes of storage but the file "
        r"holds 16 for it",
    )


def test_nvidia_init_kwargs_asking_for_a_huge_generator(tmp_path):
    tc = nvidia_helpers()
    G, D = tc.make_g(), tc.make_d()
    kw = tc.g_kwargs(G)
    kw["z_dim"] = kw["w_dim"] = 10**9
    tc.dump_with_fake_modules(tc.nvidia_snapshot(G, D, g_kw=kw), tmp_path / "net.pkl")
    refused(
        load_generator,
        tmp_path / "net.pkl",
        r"the stored Generator config .*'style_dim': 1000000000.* describes a model of more than",
    )
