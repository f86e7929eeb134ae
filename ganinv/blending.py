"""Filling holes with smooth functions of what surrounds them: classical inpainting and seamless pasting.

Both minimise a quadratic smoothness energy over the hole pixels with the known pixels (``mask`` = 1) held
fixed, solved by conjugate gradients (:func:`_fill`):

* :func:`biharmonic_inpaint`: the discrete thin-plate energy ``½ Σ (u_xx² + u_yy² + 2 u_xy²)``, a
  biharmonic fill that continues ramps (the classical baseline of the inpainting benchmark);
* :func:`harmonic_fill`: the Dirichlet energy ``½ Σ_(p,q) (u_p - u_q)²`` over 4-neighbour pairs, a harmonic
  (Laplace) fill, which never leaves the range of its border values (maximum principle);
* :func:`seamless_paste`: Poisson image editing (Pérez, Gangnet and Blake, SIGGRAPH 2003) for pasting the
  known pixels of ``x`` onto a completion ``y``: inside the hole the result keeps ``y``'s gradients but meets
  ``x`` at the border, ``y + c`` with ``c`` the harmonic fill of the difference ``x - y`` at the border. A
  plain paste (``mask * x + (1 - mask) * y``) leaves a colour step wherever ``y`` differs from ``x`` at the
  border; the seamless paste spreads that difference smoothly over the hole instead. It is a
  post-processing step of ours: the diverse-inpainting paper does not say whether or how it pastes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["biharmonic_inpaint", "harmonic_fill", "seamless_paste"]


def _second_differences(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """u [B, H, W] -> (u_xx [B, H, W-2], u_yy [B, H-2, W], u_xy [B, H-1, W-1]) by finite differences."""
    dxx = u[..., :, :-2] - 2 * u[..., :, 1:-1] + u[..., :, 2:]
    dyy = u[..., :-2, :] - 2 * u[..., 1:-1, :] + u[..., 2:, :]
    dxy = u[..., 1:, 1:] - u[..., 1:, :-1] - u[..., :-1, 1:] + u[..., :-1, :-1]
    return dxx, dyy, dxy


def _thin_plate(u: torch.Tensor) -> torch.Tensor:
    """Gradient of E(u) = ½ (|u_xx|² + |u_yy|² + 2 |u_xy|²) (discrete thin-plate energy), i.e.
    ``Dxxᵀ Dxx u + Dyyᵀ Dyy u + 2 Dxyᵀ Dxy u``; away from the border it is the 13-point biharmonic stencil."""
    pad = F.pad
    dxx, dyy, dxy = _second_differences(u)
    out = pad(dxx, (0, 2)) - 2 * pad(dxx, (1, 1)) + pad(dxx, (2, 0))
    out = out + pad(dyy, (0, 0, 0, 2)) - 2 * pad(dyy, (0, 0, 1, 1)) + pad(dyy, (0, 0, 2, 0))
    cross = pad(dxy, (1, 0, 1, 0)) - pad(dxy, (0, 1, 1, 0)) - pad(dxy, (1, 0, 0, 1)) + pad(dxy, (0, 1, 0, 1))
    return out + 2 * cross


def _dirichlet(u: torch.Tensor) -> torch.Tensor:
    """Gradient of E(u) = ½ Σ (u_p - u_q)² over 4-neighbour pairs: ``Dxᵀ Dx u + Dyᵀ Dy u`` (the negative
    5-point Laplacian inside the image, with the pairs that leave it simply absent)."""
    dx = u[..., :, 1:] - u[..., :, :-1]
    dy = u[..., 1:, :] - u[..., :-1, :]
    return F.pad(dx, (1, 0)) - F.pad(dx, (0, 1)) + F.pad(dy, (0, 0, 1, 0)) - F.pad(dy, (0, 0, 0, 1))


def _fill(
    x: torch.Tensor,
    mask: torch.Tensor,
    energy_grad: Callable[[torch.Tensor], torch.Tensor],
    tol: float,
    max_iter: int,
) -> torch.Tensor:
    """Minimise the quadratic energy whose gradient is ``energy_grad`` over the hole pixels of ``x``
    [N, C, H, W] (``mask`` [N or 1, 1, H, W], 1 = keep), the known pixels fixed. Conjugate gradients in
    float64 per image and channel (``A = P K P`` on the hole, K the energy's Hessian, P the hole projector)
    from the mean of the known pixels (0 without any), until |r| <= tol·|b| or ``max_iter`` iterations."""
    n, c, h, w = x.shape
    m = mask.to(x).expand(n, 1, h, w).expand(n, c, h, w).reshape(n * c, h, w).double()
    known = x.reshape(n * c, h, w).double() * m
    hole = 1 - m
    if h < 3 or w < 3 or not hole.any():
        return x.clone()
    area = m.sum((1, 2), keepdim=True)
    mean = torch.where(area > 0, known.sum((1, 2), keepdim=True) / area.clamp(min=1), torch.zeros_like(area))

    def apply(v: torch.Tensor) -> torch.Tensor:
        return hole * energy_grad(hole * v)

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum((1, 2), keepdim=True)  # [B, 1, 1]

    b = -hole * energy_grad(known)
    u = hole * mean
    r = b - apply(u)
    p, rr = r.clone(), dot(r, r)
    limit = tol**2 * dot(b, b).clamp(min=1e-300)
    for _ in range(max_iter):
        if bool((rr <= limit).all()):
            break
        ap = apply(p)
        pap = dot(p, ap)
        alpha = torch.where(pap > 0, rr / pap.clamp(min=1e-300), torch.zeros_like(pap))
        u, r = u + alpha * p, r - alpha * ap
        rr_new = dot(r, r)
        p = r + torch.where(rr > 0, rr_new / rr.clamp(min=1e-300), torch.zeros_like(rr)) * p
        rr = rr_new
    return (known + hole * u).reshape(n, c, h, w).to(x.dtype)


@torch.no_grad()
def biharmonic_inpaint(
    x: torch.Tensor, mask: torch.Tensor, tol: float = 1e-9, max_iter: int = 20000
) -> torch.Tensor:
    """Fill the holes of ``x`` [N, C, H, W] (``mask`` [N or 1, 1, H, W], 1 = keep) with the minimiser of the
    discrete thin-plate energy (:func:`_thin_plate`) with the known pixels fixed: a biharmonic function
    inside the hole, so linear ramps are reproduced exactly and known pixels are returned unchanged.
    Iterations of :func:`_fill` grow with the hole's diameter (about 2-4k for 64 px images with 60-100 %
    holes)."""
    return _fill(x, mask, _thin_plate, tol, max_iter)


@torch.no_grad()
def harmonic_fill(
    x: torch.Tensor, mask: torch.Tensor, tol: float = 1e-6, max_iter: int = 5000
) -> torch.Tensor:
    """Fill the holes of ``x`` [N, C, H, W] with the harmonic function (discrete Laplace equation, 5-point
    stencil) that takes the known pixels' values (``mask`` [N or 1, 1, H, W], 1 = keep); known pixels are
    returned unchanged, and hole values stay within the range of the known ones (an image without known
    pixels is returned as 0)."""
    return _fill(x, mask, _dirichlet, tol, max_iter)


def _hole_side(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``y`` with every known pixel that touches the hole replaced by the mean of ``y`` over its hole
    4-neighbours: what the hole's content would continue to at the border ([N, C, H, W])."""
    hole = (1 - mask).expand(y.shape[0], 1, *y.shape[2:])

    def neighbour_sum(t: torch.Tensor) -> torch.Tensor:  # sum over the 4 neighbours (none beyond the edge)
        p = F.pad(t, (1, 1, 1, 1))
        return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]

    count = neighbour_sum(hole)  # [N, 1, H, W] hole neighbours of each pixel
    mean = neighbour_sum(y * hole) / count.clamp(min=1)
    border = (count > 0) & (hole == 0)
    return torch.where(border, mean, y)


@torch.no_grad()
def seamless_paste(x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Poisson paste of the known pixels of ``x`` onto the completion ``y`` (both [N, 3, H, W], ``mask``
    [N or 1, 1, H, W]): ``x`` where ``mask`` = 1, ``y + c`` in the holes, ``c`` the harmonic fill of ``x - y``
    from the hole border; so the hole keeps ``y``'s gradients and meets ``x`` without a step. ``y`` may
    carry a samples axis [N, k, 3, H, W].

    Our choice at the border: ``c`` starts from ``x`` minus the *hole side* of ``y`` there (the mean of ``y``
    over the hole neighbours of each known border pixel, :func:`_hole_side`), not ``y``'s own known-side
    value. Pérez et al. take the latter, which keeps whatever step ``y`` itself has across the border;
    a completion whose known pixels were already pulled towards ``x`` (full-rate stage-2 fusion) carries
    exactly such a step, and this way it is not pasted back in."""
    if y.ndim == x.ndim + 1:  # [N, k, 3, H, W]: every sample against the same x and mask
        n, k = y.shape[:2]
        xs = x.unsqueeze(1).expand_as(y).reshape(n * k, *x.shape[1:])
        ms = mask.expand(n, -1, -1, -1).repeat_interleave(k, dim=0)  # [N * k, 1, H, W]
        return seamless_paste(xs, ms, y.reshape(n * k, *y.shape[2:])).view_as(y)
    mask = mask.to(y)
    correction = harmonic_fill(x - _hole_side(y, mask), mask)  # harmonic in the holes
    return mask * x + (1 - mask) * (y + correction)
