"""Harmonic / biharmonic hole filling and the seamless (Poisson) paste of ganinv.blending, and the hinge seam
measure they are judged by (ganinv.metrics.seam_excess)."""

import pytest
import torch

from ganinv.blending import harmonic_fill, seamless_paste
from ganinv.metrics import seam_excess
from ganinv.models.inpainting import composite


def _ramp(n: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    return torch.stack([0.3 * xx + 0.2 * yy, 0.1 - 0.5 * xx, 0.7 * yy - 0.2 * xx])[None]  # [1, 3, n, n]


def _holes(n: int = 32) -> torch.Tensor:
    mask = torch.ones(1, 1, n, n)
    mask[..., 5:20, 8:30] = 0
    mask[..., 24:30, 2:9] = 0
    return mask


def test_harmonic_fill_reproduces_linear_ramps_keeps_known_pixels_and_stays_in_range():
    ramp, mask = _ramp(), _holes()
    torch.testing.assert_close(
        harmonic_fill(ramp * mask, mask), ramp, atol=1e-5, rtol=0
    )  # ramps are harmonic
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = harmonic_fill(x, mask)
    assert torch.equal(out * mask, x * mask)
    known = x[mask.expand_as(x) > 0]
    hole = out[mask.expand_as(out) == 0]
    assert known.min() - 1e-6 <= hole.min() and hole.max() <= known.max() + 1e-6  # maximum principle
    # away from the border a hole pixel is the mean of its 4 neighbours (discrete Laplace equation)
    centre = out[..., 10:15, 12:25]
    neighbours = (
        out[..., 9:14, 12:25] + out[..., 11:16, 12:25] + out[..., 10:15, 11:24] + out[..., 10:15, 13:26]
    ) / 4
    torch.testing.assert_close(centre, neighbours, atol=1e-4, rtol=0)
    assert torch.equal(harmonic_fill(x, torch.zeros(1, 1, 32, 32)), torch.zeros_like(x))  # nothing known: 0


def test_seamless_paste_keeps_known_pixels_and_removes_a_colour_offset_seam():
    x = _ramp().expand(2, -1, -1, -1).contiguous()
    mask = _holes()
    texture = 0.2 * torch.sin(torch.arange(32.0) / 2)[None, None, None]  # y's own content in the hole
    y = x + 0.5 + texture  # a completion that is too bright everywhere: a visible seam when pasted
    hard, soft = composite(x, mask, y), composite(x, mask, y, seamless=True)
    torch.testing.assert_close(soft * mask, x * mask, atol=1e-6, rtol=0)  # known pixels exactly x
    assert seam_excess(hard, x, mask).min() > 0.3
    assert seam_excess(soft, x, mask).abs().max() < 0.05  # the offset is spread smoothly, not stepped
    # the hole keeps y's gradients: an offset alone is removed, exactly on a flat image, and on the ramp up
    # to one pixel's step (the border step is taken from the hole side of y, our choice)
    flat = torch.full_like(x, 0.3)
    torch.testing.assert_close(seamless_paste(flat, mask, flat + 0.7), flat, atol=1e-5, rtol=0)
    step = (x[..., 1:] - x[..., :-1]).abs().max() + (x[..., 1:, :] - x[..., :-1, :]).abs().max()
    assert (seamless_paste(x, mask, x + 0.7) - x).abs().max() <= step
    # a completion with its own step at the border (known side already pulled to x): not pasted back in
    stepped = torch.where(mask.bool(), x, x + 0.5)
    torch.testing.assert_close(seamless_paste(x, mask, stepped), x, atol=float(step), rtol=0)
    ys = torch.stack([y, y - 1.0], 1)  # [N, k, 3, H, W]: each sample against the same x
    both = composite(x, mask, ys, seamless=True)
    torch.testing.assert_close(both[:, 0], soft, atol=1e-6, rtol=0)
    torch.testing.assert_close(both[:, 1] * mask, x * mask, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="mask"):
        composite(x, torch.full((1, 1, 32, 32), 0.5), y, seamless=True)


def test_hinge_seam_excess_counts_only_excess_steps():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8:] = 0.6  # an edge of the original at column 8
    mask = torch.ones(1, 1, 16, 16)
    mask[..., 4:12, 8:12] = 0
    smoothed = x.clone()
    smoothed[..., 4:12, 8:12] = 0.0  # the edge moved into the hole (left pairs lose their 0.6 step)
    plain, hinge = seam_excess(smoothed, x, mask), seam_excess(smoothed, x, mask, hinge=True)
    assert hinge > plain  # the plain measure credits the lost left edge against the new ones
    torch.testing.assert_close(hinge, torch.tensor([0.6 * 16 / 24]))  # 16 of 24 pairs gained a 0.6 step
    assert seam_excess(x, x, mask, hinge=True).item() == 0
