"""Distribution-level metrics on feature vectors: FID, U-IDS / P-IDS, and the feature extractors.

Everything here works on a matrix of features ``[N, D]``; which network produced them is part of the metric's
name (see ``ganinv.metrics.METRIC_NAMES``): ``fid_sfn`` uses SFN embeddings (the embedded world's stand-in
for Inception), ``fid_inception_tv`` uses torchvision's Inception-v3. Numbers are only comparable between runs
that used the same extractor, image size and number of images.

Weights are never downloaded: :func:`find_weights` looks for a local file and otherwise raises
:class:`MissingWeightsError`, whose message names the exact file and where to put it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

_TV_URL = "https://download.pytorch.org/models/"


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights needed by a metric are not on this machine (nothing is ever downloaded)."""


def torch_cache_file(filename: str) -> Path:
    """Where torchvision would cache ``filename``: ``$TORCH_HOME/hub/checkpoints/<filename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def find_weights(
    filename: str, what: str, path: str | os.PathLike | None = None, env: str | None = None
) -> Path:
    """Locate a local weights file, or raise :class:`MissingWeightsError` saying what to place where.

    Looks at ``path`` if given, else at ``$env`` if that variable is set (a file, or a folder holding
    ``filename``), else in the torchvision cache (:func:`torch_cache_file`). Never downloads anything.
    """
    cache = torch_cache_file(filename)
    if path is not None:
        where, how = Path(path), "the path given"
    elif env is not None and os.environ.get(env):
        where, how = Path(os.environ[env]), f"${env}"
    else:
        where, how = cache, "the torchvision cache"
    if where.is_dir():
        where = where / filename
    if where.is_file():
        return where
    hint = f" or set ${env} to its path" if env else ""
    raise MissingWeightsError(
        f"{what} needs the weights file '{filename}', not found at {where} ({how}). Nothing is downloaded at "
        f"run time: fetch {_TV_URL}{filename} on a machine with internet and copy it to {cache}{hint}."
    )


# ---------------------------------------------------------------------------------------------- FID


def _as_float64(features, name: str) -> np.ndarray:
    arr = (
        features.detach().cpu().double().numpy() if torch.is_tensor(features) else np.asarray(features, float)
    )
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected features of shape [N, D], got shape {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: features contain NaN or inf")
    return arr


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64 numpy) of features ``[N, D]``, N >= 2."""
    arr = _as_float64(features, "features")
    if arr.shape[0] < 2:
        raise ValueError(f"features: need at least 2 samples for a covariance, got {arr.shape[0]}")
    return arr.mean(axis=0), np.cov(arr, rowvar=False).reshape(arr.shape[1], arr.shape[1])


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(sigma)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d² = |mu1 - mu2|² + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^½). The trace term is computed without
    a general matrix square root: sigma1 sigma2 has the same eigenvalues as the symmetric PSD matrix
    sigma1^½ sigma2 sigma1^½, so tr((sigma1 sigma2)^½) is the sum of the square roots of that matrix's
    (clipped non-negative) eigenvalues. This is exact for singular covariances and never produces the tiny
    imaginary parts that ``scipy.linalg.sqrtm`` can. If the eigen-solver fails to converge, ``eps * I`` is
    added to both covariances and it retries (the offset pytorch-fid uses). Rounding can make the result a
    hair below zero for identical inputs; it is clipped to 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, float)), np.atleast_2d(np.asarray(sigma2, float))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: shapes disagree (mu1 {list(mu1.shape)}, sigma1 {list(s1.shape)}, "
            f"mu2 {list(mu2.shape)}, sigma2 {list(s2.shape)}); expected [D] and [D, D]"
        )
    if not all(np.isfinite(a).all() for a in (mu1, mu2, s1, s2)):
        raise ValueError("frechet_distance: statistics contain NaN or inf")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    try:
        root1 = _sqrt_psd(s1)
        cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    except np.linalg.LinAlgError:
        offset = eps * np.eye(d)
        root1 = _sqrt_psd(s1 + offset)
        cross = np.linalg.eigvalsh(root1 @ (s2 + offset) @ root1)
    tr_covmean = np.sqrt(np.clip(cross, 0.0, None)).sum()
    dist = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(dist, 0.0)


def fid(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[Na, D]`` and ``[Nb, D]``."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


# -------------------------------------------------------------------------------------- extractors


@torch.no_grad()
def compute_features(
    images,
    extractor: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    """Run ``extractor`` over images and stack the results into a float32 CPU tensor ``[N, D]``.

    ``images`` is a tensor ``[N, 3, H, W]`` (split into ``batch_size`` chunks) or an iterable of batches
    (tensors, or tuples/lists whose first item is the image tensor, as a DataLoader yields). Batches are moved
    to ``device`` when given. ``progress``: show a tqdm bar; None shows one only for 20 or more batches of
    known count (notebook outputs stay short on small runs).
    """
    if torch.is_tensor(images):
        if images.ndim != 4:
            raise ValueError(f"images: expected [N, 3, H, W], got shape {list(images.shape)}")
        batches = images.split(batch_size)
    else:
        batches = images
    total = len(batches) if hasattr(batches, "__len__") else None
    if progress is None:
        progress = total is not None and total >= 20
    out = []
    for batch in tqdm(batches, total=total, disable=not progress, desc="features", leave=False):
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if device is not None:
            batch = batch.to(device)
        feats = extractor(batch)
        out.append(feats.reshape(feats.shape[0], -1).float().cpu())
    if not out:
        raise ValueError("compute_features: no images given")
    return torch.cat(out)


class SFNExtractor(nn.Module):
    """FID-SFN / IDS-SFN features: the SFN embedding (``sfn.embed``), or, with ``layer=k``, the spatially
    averaged ``sfn.features(x)[k]`` (e.g. ``layer=-1`` for the last feature map). Puts ``sfn`` in eval mode.
    Works with any object that has ``embed`` / ``features`` methods."""

    name = "sfn"

    def __init__(self, sfn, layer: int | None = None):
        super().__init__()
        self.sfn, self.layer = sfn, layer
        if hasattr(sfn, "eval"):
            sfn.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer is None:
            return self.sfn.embed(x).flatten(1)
        return self.sfn.features(x)[self.layer].mean(dim=(2, 3))


class InceptionExtractor(nn.Module):
    """FID-Inception(torchvision): 2048-d pool features of torchvision's Inception-v3 with ImageNet weights
    (``inception_v3_google-0cc3c7bd.pth``) read from ``weights_path``, ``$GANINV_INCEPTION_WEIGHTS`` or the
    torchvision cache; :class:`MissingWeightsError` otherwise (nothing is downloaded).

    Images in [-1, 1] are resized bilinearly to 299x299 and fed as they are: that is what torchvision's own
    pipeline (ImageNet normalisation followed by ``transform_input``) amounts to. torchvision's Inception is
    *not* bit-identical to the TF-FID Inception network of the papers (different weights port and resizing),
    so these numbers are "FID-Inception(torchvision)", not comparable to published FIDs.
    """

    name = "inception_tv"
    filename = "inception_v3_google-0cc3c7bd.pth"

    def __init__(self, weights_path: str | os.PathLike | None = None):
        super().__init__()
        from torchvision.models import inception_v3

        path = find_weights(self.filename, "InceptionExtractor", weights_path, env="GANINV_INCEPTION_WEIGHTS")
        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        except Exception as err:  # corrupt file, or weights of another network
            raise ValueError(f"{path} does not hold torchvision Inception-v3 weights: {err}") from err
        net.fc = nn.Identity()
        self.net = net.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        self.net.eval()
        return self.net(x)


# ----------------------------------------------------------------------------------- U-IDS / P-IDS


def _fit_linear_svm(x: torch.Tensor, y: torch.Tensor, c: float, max_iter: int, tol: float) -> torch.Tensor:
    """Primal L2-regularised squared-hinge linear SVM (LIBLINEAR's ``dual=False`` problem) by Newton-CG.

    Minimises f(w) = ½|w|² + c Σ max(0, 1 - y_i w·[x_i, 1])²; the bias is the last weight and is regularised,
    as in LIBLINEAR with ``intercept_scaling=1``. f is strongly convex and piecewise quadratic; each step
    solves (I + 2c X_AᵀX_A) d = -∇f (A = samples inside the margin, the generalised Hessian) by conjugate
    gradients to 10% relative residual, then backtracks along d until f decreases (Armijo). Stops when
    |∇f| <= tol |∇f(0)|.
    """
    xb = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    w = torch.zeros(xb.shape[1], dtype=x.dtype)

    def value_grad(w):
        slack = (1.0 - y * (xb @ w)).clamp(min=0.0)
        return 0.5 * w.dot(w) + c * slack.pow(2).sum(), w - 2.0 * c * (xb.T @ (y * slack)), slack > 0

    f, g, active = value_grad(w)
    g0 = g.norm().item()
    for _ in range(max_iter):
        if g.norm().item() <= tol * g0:
            break
        act = active.to(x.dtype)
        d, res = torch.zeros_like(w), -g  # conjugate gradients on H d = -g
        p, rr = res.clone(), res.dot(res)
        for _ in range(xb.shape[1]):
            hp = p + 2.0 * c * (xb.T @ (act * (xb @ p)))
            alpha = rr / p.dot(hp)
            d, res = d + alpha * p, res - alpha * hp
            rr_new = res.dot(res)
            if rr_new.sqrt() <= 0.1 * g.norm():
                break
            p, rr = res + (rr_new / rr) * p, rr_new
        step, slope = 1.0, g.dot(d).item()
        while True:
            f_new, g_new, active_new = value_grad(w + step * d)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step /= 2
        w, f, g, active = w + step * d, f_new, g_new, active_new
    else:
        warnings.warn(
            f"ids_scores: the linear SVM stopped before converging (|grad| {g.norm():.2e})", stacklevel=3
        )
    return w


def ids_scores(
    real_features, fake_features, c: float = 1.0, standardize: bool = False, max_iter: int = 100
) -> dict[str, float]:
    """U-IDS and P-IDS (Zhao et al., CoModGAN, ICLR 2021), re-implemented.

    A linear SVM separates real (label +1) from fake (label -1) features, paired one-to-one (``real[i]``
    is the image that ``fake[i]`` reconstructs or completes). **U-IDS** is its misclassification rate on
    the very data it was fitted on (a sample counts as predicted real when its decision value is > 0, as in
    scikit-learn); **P-IDS** is the fraction of pairs with decision(fake_i) > decision(real_i). Both are 0
    when fakes are trivially told apart and approach 0.5 when they are indistinguishable.

    Solver: the problem of the reference's ``sklearn.svm.LinearSVC(dual=False)`` with default settings
    (squared hinge, L2 penalty, ``C=1``, regularised intercept, no feature standardisation), solved in
    float64 by a primal Newton-CG method like LIBLINEAR's (stop at |grad| <= 1e-6 |grad at 0|, at most
    ``max_iter`` Newton steps, a warning if it stops early); in checks against LinearSVC the weights agreed
    to 1e-5 or better and U-IDS / P-IDS were identical.
    ``standardize=True`` z-scores the features (pooled mean and std) first; the reference does not.
    """
    real, fake = _as_float64(real_features, "real_features"), _as_float64(fake_features, "fake_features")
    if real.shape != fake.shape:
        raise ValueError(
            f"ids_scores: real and fake features must be paired with equal shapes, got {list(real.shape)} "
            f"and {list(fake.shape)}"
        )
    x = torch.from_numpy(np.concatenate([real, fake]))
    if standardize:
        x = (x - x.mean(dim=0)) / x.std(dim=0).clamp(min=1e-12)
    y = torch.cat([torch.ones(len(real)), -torch.ones(len(fake))]).double()
    w = _fit_linear_svm(x, y, c, max_iter, tol=1e-6)
    decision = x @ w[:-1] + w[-1]
    u_ids = ((decision > 0).double() * 2 - 1 != y).double().mean().item()
    d_real, d_fake = decision[: len(real)], decision[len(real) :]
    p_ids = (d_fake > d_real).double().mean().item()
    return {"u_ids": u_ids, "p_ids": p_ids}


# ------------------------------------------------------------------------- realism (k-NN precision)


class SFNTextureExtractor(nn.Module):
    """FID-SFN-texture / realism-SFN-texture features: the per-channel mean and standard deviation over space
    of the first SFN stages (``layers``, default the 32 x 32 and 16 x 16 maps of a 64 px SFN), concatenated:
    ``[N, 2 * sum(C_layer)]``.

    Why not the embedding: the SFN is trained to read factors and identity, so its embedding is invariant to
    much of what makes an image look *unclean* (noise, blur, blotches, ghosting;
    ``ganinv.eval.metric_battery`` measures it). The early stages still respond to local texture, and their
    first two moments are a texture descriptor in the spirit of Gatys et al. (2015, Gram statistics) and of
    the "mean and std of feature maps" of AdaIN (Huang & Belongie 2017). Puts ``sfn`` in eval mode."""

    name = "sfn_texture"

    def __init__(self, sfn, layers: tuple[int, ...] = (0, 1)):
        super().__init__()
        if not layers:
            raise ValueError("SFNTextureExtractor: layers must name at least one SFN stage")
        self.sfn, self.layers = sfn, tuple(layers)
        if hasattr(sfn, "eval"):
            sfn.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.sfn.features(x)
        stats = []
        for k in self.layers:
            f = maps[k]  # [N, C, h, w]
            stats += [f.mean(dim=(2, 3)), f.std(dim=(2, 3))]
        return torch.cat(stats, dim=1)  # [N, 2 * sum(C)]


def realism_scores(real_features, fake_features, k: int = 3, keep: float = 0.5) -> torch.Tensor:
    """Realism score of every fake sample, ``[N_fake]`` (Kynkäänniemi et al., NeurIPS 2019, "Improved
    Precision and Recall Metric for Assessing Generative Models", Sec. 5, Eq. 3).

    Each real feature φ_r gets the radius of its k-NN ball among the real features, NND_k(φ_r) (the sample
    itself excluded). The realism of a fake φ_g is ``max_r NND_k(φ_r) / |φ_g - φ_r|``: above 1 when φ_g lies
    inside some real ball (the paper's precision counts exactly those), larger the deeper inside. As in the
    paper, only the fraction ``keep`` of real samples with the *smallest* radii is used (0.5: the half in
    dense regions), so that one outlier with a huge ball cannot call everything real. Higher is more real.
    Features ``[N, D]`` (any extractor); a fake identical to a kept real sample gives inf.
    """
    real = torch.from_numpy(_as_float64(real_features, "real_features"))
    fake = torch.from_numpy(_as_float64(fake_features, "fake_features"))
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"realism_scores: feature sizes differ ({real.shape[1]} real, {fake.shape[1]} fake)")
    if not 1 <= k < real.shape[0]:
        raise ValueError(f"realism_scores: need 1 <= k < number of real samples ({real.shape[0]}), got k={k}")
    if not 0 < keep <= 1:
        raise ValueError(f"realism_scores: keep must be in (0, 1], got {keep}")
    radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values  # [Nr]; the 1st is the sample itself
    kept = radii.argsort()[: max(1, round(keep * real.shape[0]))]
    dist = torch.cdist(fake, real[kept])  # [Nf, Nk]
    return (radii[kept][None] / dist).max(dim=1).values.float()
