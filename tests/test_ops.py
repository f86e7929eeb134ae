"""CPU tests of ganinv.ops: the reference path against independent formulations, and the autograd Functions
(the CUDA path's derivative logic) driven by the reference kernels, to first and second order."""

import math

import pytest
import torch
import torch.nn.functional as F

from ganinv.ops import _reference, fused_bias_act, upfirdn2d, use_impl
from ganinv.ops._dispatch import cuda_kernels

CASES = [  # (up, down, pad, kernel shape)
    (1, 1, (0, 0), (3, 3)),
    (2, 1, (2, 1), (4, 4)),  # ToRGB skip upsampling
    (1, 1, (1, 1), (4, 4)),  # blur after transposed conv
    (1, 2, (2, 2), (4, 4)),  # D down-conv blur
    (1, 2, (1, 1, 1, 1), (4, 4)),  # D skip blur
    (2, 2, (-1, 2, 1, -1), (3, 2)),  # negative pads crop
    ((2, 1), (1, 2), (1, 1, 2, 2), (4, 3)),  # anisotropic
]


def _upfirdn1d_loop(x, k, up, down, p0, p1):
    """A direct, loop-based 1-D definition: the oracle for the vectorised reference."""
    u = [0.0] * (len(x) * up)
    u[::up] = x
    n_out = (len(u) + p0 + p1 - len(k)) // down + 1
    out = []
    for o in range(n_out):
        acc = 0.0
        for t in range(len(k)):
            j = o * down + t - p0
            if 0 <= j < len(u):
                acc += u[j] * k[len(k) - 1 - t]
        out.append(acc)
    return out


@pytest.mark.parametrize("up,down,p0,p1", [(1, 1, 0, 0), (2, 1, 2, 1), (1, 2, 2, 2), (3, 2, -1, 3)])
def test_upfirdn2d_matches_loop_definition(up, down, p0, p1):
    x = torch.randn(9, dtype=torch.double)
    k = torch.randn(4, dtype=torch.double)
    want = torch.tensor(_upfirdn1d_loop(x.tolist(), k.tolist(), up, down, p0, p1), dtype=torch.double)
    # a separable 2-D case whose vertical axis is a 1-tap identity reduces to the 1-D definition
    got = upfirdn2d(x.view(1, 1, 1, 9), k.view(1, 4), up=(up, 1), down=(down, 1), pad=(p0, p1, 0, 0))
    torch.testing.assert_close(got.view(-1), want)


def test_upfirdn2d_equals_known_resamplers():
    x = torch.randn(2, 3, 8, 8)
    box = torch.ones(2, 2) / 4
    # 2x2 box filter + down 2 = average pooling
    torch.testing.assert_close(upfirdn2d(x, box, down=2), F.avg_pool2d(x, 2))
    # up 2 with a 2x2 ones kernel (gain 4 folded in) = nearest-neighbour upsampling
    torch.testing.assert_close(
        upfirdn2d(x, torch.ones(2, 2), up=2, pad=(1, 0)), F.interpolate(x, scale_factor=2, mode="nearest")
    )


def test_upfirdn2d_shapes_and_errors():
    x = torch.randn(1, 2, 16, 16)
    k = torch.ones(4, 4)
    assert upfirdn2d(x, k, up=2, pad=(2, 1)).shape == (1, 2, 32, 32)
    assert upfirdn2d(x, k, down=2, pad=(1, 1)).shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match="N, C, H, W"):
        upfirdn2d(x[0], k)
    with pytest.raises(ValueError, match="2-D kernel"):
        upfirdn2d(x, torch.ones(4))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        upfirdn2d(torch.randn(1, 1, 2, 2), k)
    with pytest.raises(ValueError, match="pad must be"):
        upfirdn2d(x, k, pad=(1, 1, 1))


@pytest.mark.parametrize("up,down,pad,kshape", CASES)
def test_upfirdn2d_function_path_first_and_second_derivatives(up, down, pad, kshape):
    x = torch.randn(2, 2, 5, 6, dtype=torch.double, requires_grad=True)
    k = torch.randn(*kshape, dtype=torch.double)

    def fn(t):
        return upfirdn2d(t, k, up, down, pad, kernels=_reference)

    torch.testing.assert_close(fn(x), upfirdn2d(x, k, up, down, pad))
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4, 4), (2, 3, 5)])
def test_fused_bias_act_matches_definition(shape):
    x = torch.randn(*shape)
    b = torch.randn(shape[1])
    want = F.leaky_relu(x + b.view([1, -1] + [1] * (len(shape) - 2)), 0.2) * math.sqrt(2)
    torch.testing.assert_close(fused_bias_act(x, b), want)
    torch.testing.assert_close(fused_bias_act(x, None, 0.1, 1.0), F.leaky_relu(x, 0.1))


@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_bias_act_function_path_derivatives(with_bias):
    x = torch.randn(3, 4, 3, 3, dtype=torch.double, requires_grad=True)
    b = torch.randn(4, dtype=torch.double, requires_grad=True) if with_bias else None
    inputs = (x, b) if with_bias else (x,)

    def fn(*args):
        return fused_bias_act(args[0], args[1] if with_bias else None, kernels=_reference)

    torch.testing.assert_close(fn(*inputs), fused_bias_act(x, b))
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_fused_bias_act_bad_bias():
    with pytest.raises(ValueError, match="does not match x channels"):
        fused_bias_act(torch.randn(2, 3, 4, 4), torch.randn(4))


def test_cpu_tensors_never_build_or_use_kernels():
    x = torch.randn(2, 3)
    assert cuda_kernels(x) is None
    with use_impl("cuda"), pytest.raises(RuntimeError, match="needs CUDA tensors"):
        cuda_kernels(x)
    with pytest.raises(ValueError, match="unknown op implementation"), use_impl("fast"):
        pass


def test_import_compiles_nothing():
    import subprocess
    import sys

    code = (
        "import sys, ganinv, ganinv.ops, ganinv.models.stylegan2\n"
        "print('torch.utils.cpp_extension' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
