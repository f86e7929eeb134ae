"""Tests of the compiled CUDA kernels (ganinv/ops/csrc).

* ``test_load_extension_*``: the build module's caching and fallback logic, on any machine (nothing compiles).
* ``cuda``: the kernels against the PyTorch reference (``use_impl("cuda")`` vs ``use_impl("ref")``), outputs
  and first and second derivatives, including ``gradcheck`` / ``gradgradcheck`` of the autograd Functions on
  the kernels. Skipped without a GPU (tests/conftest.py).
* ``slow``: compiles the extension from scratch, also on a machine without a GPU (``TORCH_CUDA_ARCH_LIST``).
  It is the last test of the file on purpose: see its docstring.
"""

import os
import shutil
import warnings

import pytest
import torch

from ganinv.ops import _build, _reference, fused_bias_act, upfirdn2d, use_impl

ALPHA, SCALE = 0.2, 2**0.5

# ------------------------------------------------------------------------------------------------------------
# The build module's logic (no compilation)


@pytest.fixture
def fresh_build_cache(monkeypatch):
    """Forget any build outcome cached by ``load_extension`` for the duration of the test."""
    monkeypatch.setattr(_build, "_cached", _build._UNSET)


def test_load_extension_without_gpu_returns_none_without_building(monkeypatch, fresh_build_cache):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def must_not_build(verbose=False):
        raise AssertionError("load_extension must not build without a GPU")

    monkeypatch.setattr(_build, "build_extension", must_not_build)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _build.load_extension() is None


def test_load_extension_failure_warns_once_and_is_not_retried(monkeypatch, fresh_build_cache):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    calls = []

    def failing_build(verbose=False):
        calls.append(verbose)
        raise RuntimeError("Error building extension 'ganinv_ops_x': nvcc exploded")

    monkeypatch.setattr(_build, "build_extension", failing_build)
    with pytest.warns(RuntimeWarning, match="nvcc exploded") as record:
        assert _build.load_extension() is None
        assert _build.load_extension() is None
    assert len(calls) == 1
    assert len(record) == 1
    assert "reference" in str(record[0].message)


def test_load_extension_caches_the_module(monkeypatch, fresh_build_cache):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    module = object()
    calls = []
    monkeypatch.setattr(_build, "build_extension", lambda verbose=False: calls.append(1) or module)
    assert _build.load_extension() is module
    assert _build.load_extension() is module
    assert len(calls) == 1


def test_extension_name_and_build_directory(monkeypatch, tmp_path):
    name = _build.extension_name()
    assert name.startswith("ganinv_ops_") and len(name) > len("ganinv_ops_") + 8
    assert name == _build.extension_name()  # deterministic
    monkeypatch.setenv("GANINV_CACHE_DIR", str(tmp_path))
    assert _build.build_directory(name) == tmp_path / "torch_extensions" / name
    monkeypatch.delenv("GANINV_CACHE_DIR")
    assert _build.build_directory(name).parts[-3:] == ("ganinv", "torch_extensions", name)
    assert {p.name for p in _build.CSRC_DIR.iterdir()} >= set(_build.SOURCES)


# ------------------------------------------------------------------------------------------------------------
# fused_bias_act on the GPU

FBA_SHAPES = [(6, 5), (3, 4, 7), (2, 5, 4, 3)]  # [N, C], [N, C, L], [N, C, H, W]


def _fba_inputs(shape, with_bias, dtype, requires_grad=False):
    """x and bias (or None) on the GPU whose pre-activation x + bias keeps clear of the kink at 0.

    Finite differences (eps 1e-6) then never straddle the kink, so gradcheck is well defined.
    """
    z = torch.randn(shape, dtype=torch.float64, device="cuda")
    z = z + 0.1 * torch.where(z >= 0, 1.0, -1.0)
    bias = torch.randn(shape[1], dtype=torch.float64, device="cuda") if with_bias else None
    x = z - bias.view([1, -1] + [1] * (len(shape) - 2)) if with_bias else z
    x = x.to(dtype).requires_grad_(requires_grad)
    if bias is not None:
        bias = bias.to(dtype).requires_grad_(requires_grad)
    return x, bias


def _fba(impl, x, bias):
    with use_impl(impl):
        return fused_bias_act(x, bias, ALPHA, SCALE)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shape", FBA_SHAPES)
def test_fused_bias_act_matches_reference(shape, with_bias, dtype):
    x, bias = _fba_inputs(shape, with_bias, dtype, requires_grad=True)
    y_cuda, y_ref = _fba("cuda", x, bias), _fba("ref", x, bias)
    torch.testing.assert_close(y_cuda, y_ref)

    # first derivatives, with respect to x and bias
    inputs = [x] if bias is None else [x, bias]
    g = torch.randn_like(y_ref).requires_grad_()
    grads_cuda = torch.autograd.grad(y_cuda, inputs, g, create_graph=True)
    grads_ref = torch.autograd.grad(y_ref, inputs, g, create_graph=True)
    for got, want in zip(grads_cuda, grads_ref):
        torch.testing.assert_close(got, want)

    # second derivatives: of <dL/dx, v> with respect to the incoming gradient g (and to x: zero a.e.)
    v = torch.randn_like(x)
    sec_cuda = torch.autograd.grad((grads_cuda[0] * v).sum(), [g, x], allow_unused=True)
    sec_ref = torch.autograd.grad((grads_ref[0] * v).sum(), [g, x], allow_unused=True)
    torch.testing.assert_close(sec_cuda[0], sec_ref[0])
    for got in (sec_cuda[1], sec_ref[1]):
        assert got is None or not got.any()


@pytest.mark.cuda
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 3, 2)])
def test_fused_bias_act_gradcheck(shape, with_bias):
    x, bias = _fba_inputs(shape, with_bias, torch.float64, requires_grad=True)
    inputs = (x,) if bias is None else (x, bias)

    def fn(*args):
        return fused_bias_act(*args, negative_slope=ALPHA, scale=SCALE)

    with use_impl("cuda"):
        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.cuda
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shape", [(8, 16), (2, 16, 9, 7)])
def test_fused_bias_act_half_forward(shape, with_bias):
    x, bias = _fba_inputs(shape, with_bias, torch.float16)
    y = _fba("cuda", x, bias)
    assert y.dtype == torch.float16
    # the kernel computes in float and rounds once: it matches the float32 result rounded to half ...
    want = _fba("ref", x.float(), None if bias is None else bias.float()).half()
    torch.testing.assert_close(y, want, rtol=1e-3, atol=1e-3)
    # ... and, loosely, the reference run in half (which rounds after every step)
    torch.testing.assert_close(y, _fba("ref", x, bias), rtol=1e-2, atol=1e-2)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_fused_bias_act_kernel_contract(dtype):
    """Both grad modes of the raw kernel against the reference kernel, and its argument checks."""
    ext = _build.load_extension()
    assert ext is not None
    x, bias = _fba_inputs((3, 4, 5, 6), True, dtype)
    empty = x.new_empty(0)
    tol = {"rtol": 1e-2, "atol": 1e-2} if dtype == torch.float16 else {}
    y = ext.fused_bias_act(x, bias, empty, 0, ALPHA, SCALE)
    torch.testing.assert_close(y, _reference.fused_bias_act(x, bias, empty, 0, ALPHA, SCALE), **tol)
    dy = torch.randn_like(x)
    dx = ext.fused_bias_act(dy, empty, y, 1, ALPHA, SCALE)
    # (the reference rounds alpha to float32 in grad mode 1, hence the default, not exact, tolerance in fp64)
    torch.testing.assert_close(dx, _reference.fused_bias_act(dy, empty, y, 1, ALPHA, SCALE), **tol)

    with pytest.raises(ValueError, match="grad_mode"):
        ext.fused_bias_act(x, bias, empty, 2, ALPHA, SCALE)
    with pytest.raises(RuntimeError, match="contiguous"):
        ext.fused_bias_act(x.transpose(2, 3), bias, empty, 0, ALPHA, SCALE)
    with pytest.raises(RuntimeError, match="bias"):
        ext.fused_bias_act(x, bias[:3], empty, 0, ALPHA, SCALE)
    with pytest.raises(RuntimeError, match="CUDA"):
        ext.fused_bias_act(x.cpu(), empty.cpu(), empty.cpu(), 0, ALPHA, SCALE)
    with pytest.raises(RuntimeError, match="ref"):
        ext.fused_bias_act(dy, empty, y[:1], 1, ALPHA, SCALE)
    other = torch.float64 if dtype != torch.float64 else torch.float32
    with pytest.raises(RuntimeError, match="dtype"):
        ext.fused_bias_act(x, bias.to(other), empty, 0, ALPHA, SCALE)
    assert ext.fused_bias_act(x[:0], bias, empty, 0, ALPHA, SCALE).shape == x[:0].shape


# ------------------------------------------------------------------------------------------------------------
# upfirdn2d on the GPU

UPFIRDN_CASES = [  # (up, down, pad, kernel shape)
    (2, 1, (2, 1), (4, 4)),  # StyleGAN2 2x upsampling (Upsample, ToRGB skip)
    (1, 2, (1, 1), (4, 4)),  # StyleGAN2 2x downsampling (Downsample, D skip)
    (1, 2, (2, 2), (4, 4)),
    (1, 1, (1, 1), (4, 4)),  # blur after the transposed conv of an upsampling ModulatedConv2d
    (1, 1, (2, 2), (4, 4)),  # blur before a stride-2 conv
    (1, 1, (0, 0), (3, 3)),
    (1, 1, (-1, -2), (3, 3)),  # negative pads crop
    (2, 1, (-2, 3, 1, -1), (4, 4)),  # pads of both signs on a 4x4 2x-up (the tiled kernel when large)
    (1, 2, (3, -1, -1, 2), (4, 4)),  # the same on a 4x4 2x-down
    (2, 2, (1, 1), (4, 4)),
    (3, 1, (1, 2), (5, 5)),
    (1, 3, (0, 1), (3, 3)),
    ((2, 1), (1, 2), (1, 1, 2, 2), (4, 3)),  # anisotropic up / down
    ((1, 3), (2, 1), (0, 2, -1, 1), (2, 5)),
    (1, 1, (0, 3), (1, 4)),  # one-row kernel
    (2, 1, (1, 2), (4, 1)),  # one-column kernel
]
UPFIRDN_IDS = [f"up{u}-down{d}-pad{p}-k{k[0]}x{k[1]}".replace(" ", "") for u, d, p, k in UPFIRDN_CASES]

# Small inputs take the generic kernel; the large shape takes the tiled kernel for the 4x4 cases (up 2,
# down 2 or neither) and spans several tiles in both directions, with a partial last tile.
SMALL, LARGE = (1, 2, 8, 7), (2, 3, 45, 70)


def _upfirdn(impl, x, kernel, up, down, pad):
    with use_impl(impl):
        return upfirdn2d(x, kernel, up=up, down=down, pad=pad)


def _kernel(shape, dtype=torch.float64):
    return torch.randn(shape, dtype=dtype, device="cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["small", "large"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("up,down,pad,kshape", UPFIRDN_CASES, ids=UPFIRDN_IDS)
def test_upfirdn2d_forward_matches_reference(up, down, pad, kshape, dtype, size):
    x = torch.randn(size, dtype=torch.float64, device="cuda").to(dtype)
    kernel = _kernel(kshape).to(dtype)
    got = _upfirdn("cuda", x, kernel, up, down, pad)
    assert got.dtype == dtype
    # the reference in float64 on the same (rounded) inputs: no TF32 or half rounding on that side
    want = _upfirdn("ref", x.double(), kernel.double(), up, down, pad)
    tol = {torch.float16: 1e-2, torch.float32: 1e-4, torch.float64: 1e-10}[dtype]
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


@pytest.mark.cuda
@pytest.mark.parametrize("up,down,pad,kshape", UPFIRDN_CASES, ids=UPFIRDN_IDS)
def test_upfirdn2d_derivatives_match_reference(up, down, pad, kshape):
    x = torch.randn(LARGE, dtype=torch.float64, device="cuda", requires_grad=True)
    kernel = _kernel(kshape)
    y_cuda = _upfirdn("cuda", x, kernel, up, down, pad)
    y_ref = _upfirdn("ref", x, kernel, up, down, pad)
    torch.testing.assert_close(y_cuda, y_ref)
    g = torch.randn_like(y_ref).requires_grad_()
    (dx_cuda,) = torch.autograd.grad(y_cuda, x, g, create_graph=True)
    (dx_ref,) = torch.autograd.grad(y_ref, x, g, create_graph=True)
    torch.testing.assert_close(dx_cuda, dx_ref)
    # second order: the derivative of <dL/dx, v> with respect to g is the forward op applied to v
    v = torch.randn_like(x)
    (dg_cuda,) = torch.autograd.grad((dx_cuda * v).sum(), g)
    (dg_ref,) = torch.autograd.grad((dx_ref * v).sum(), g)
    torch.testing.assert_close(dg_cuda, dg_ref)


@pytest.mark.cuda
@pytest.mark.parametrize("up,down,pad,kshape", UPFIRDN_CASES, ids=UPFIRDN_IDS)
def test_upfirdn2d_gradcheck(up, down, pad, kshape):
    x = torch.randn(SMALL, dtype=torch.float64, device="cuda", requires_grad=True)
    kernel = _kernel(kshape)

    def fn(t):
        return upfirdn2d(t, kernel, up=up, down=down, pad=pad)

    with use_impl("cuda"):
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.cuda
@pytest.mark.parametrize(
    "shape,up,down,pad",
    [
        ((1, 70000, 3, 3), 1, 1, (1, 1)),  # generic kernel, more planes than a grid dimension holds
        ((1, 65600, 8, 16), 2, 1, (2, 1)),  # tiled kernel, likewise
    ],
    ids=["generic", "tiled"],
)
def test_upfirdn2d_many_planes(shape, up, down, pad):
    x = torch.randn(shape, device="cuda")
    kernel = _kernel((4, 4), torch.float32)
    got = _upfirdn("cuda", x, kernel, up, down, pad)
    want = _upfirdn("ref", x.double(), kernel.double(), up, down, pad)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.cuda
def test_upfirdn2d_kernel_contract():
    """The raw kernel's argument checks."""
    ext = _build.load_extension()
    assert ext is not None
    x = torch.randn(2, 3, 8, 8, device="cuda")
    k = torch.randn(4, 4, device="cuda")
    assert ext.upfirdn2d(x, k, 2, 2, 1, 1, 2, 1, 2, 1).shape == (2, 3, 16, 16)
    assert ext.upfirdn2d(x[:0], k, 2, 2, 1, 1, 2, 1, 2, 1).shape == (0, 3, 16, 16)
    with pytest.raises(RuntimeError, match="contiguous"):
        ext.upfirdn2d(x.transpose(2, 3), k, 1, 1, 1, 1, 0, 0, 0, 0)
    with pytest.raises(RuntimeError, match="dtype"):
        ext.upfirdn2d(x, k.double(), 1, 1, 1, 1, 0, 0, 0, 0)
    with pytest.raises(RuntimeError, match="CUDA"):
        ext.upfirdn2d(x.cpu(), k.cpu(), 1, 1, 1, 1, 0, 0, 0, 0)
    with pytest.raises(RuntimeError, match="N, C, H, W"):
        ext.upfirdn2d(x[0], k, 1, 1, 1, 1, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        ext.upfirdn2d(x, k, 1, 1, 1, 1, -3, -3, 0, 0)
    with pytest.raises(ValueError, match="factors"):
        ext.upfirdn2d(x, k, 0, 1, 1, 1, 0, 0, 0, 0)


# ------------------------------------------------------------------------------------------------------------
# The build itself


def _nvcc_found() -> bool:
    if shutil.which("nvcc"):
        return True
    from torch.utils import cpp_extension

    home = os.environ.get("CUDA_HOME") or cpp_extension.CUDA_HOME
    return bool(home) and os.path.isfile(os.path.join(home, "bin", "nvcc"))


@pytest.mark.slow
@pytest.mark.skipif(not _nvcc_found(), reason="nvcc (the CUDA compiler) not found")
def test_extension_compiles(monkeypatch, tmp_path):
    """Compile the kernels from scratch into a temporary cache, for sm_90, with or without a GPU.

    Importing the resulting module works on a machine without a GPU too (it only links against torch's CUDA
    libraries, which load without a driver); only calling its functions needs a GPU.

    Last in the file because torch's JIT loader renames (``<name>_v1``) and rebuilds an extension that is
    loaded again in the same process from another directory: tests before this one load the kernels from
    the user's cache under its plain name, so this test, not they, takes the renamed build.
    """
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    monkeypatch.setenv("GANINV_CACHE_DIR", str(tmp_path))
    module = _build.build_extension()
    build_dir = _build.build_directory()
    assert build_dir.parent == tmp_path / "torch_extensions"
    assert list(build_dir.glob("*.so")), "the build left no shared object"
    assert callable(module.fused_bias_act)
    assert callable(module.upfirdn2d)
