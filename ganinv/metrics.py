"""Image metrics for inversion, editing and inpainting.

Images are float tensors ``[N, 3, H, W]`` in [-1, 1] (the GAN convention). Per-image metrics return a
tensor ``[N]``; :func:`summarize` turns a dict of them into the floats the notebooks write to JSON. Optional
masks are ``[N, 1, H, W]`` (or ``[1, 1, H, W]``) with 1 = pixels to include, e.g. PSNR on unerased pixels.

Every metric's name says which network it used (:data:`METRIC_NAMES`). In the embedded SynthFaces world the
SFN plays the roles of LPIPS's AlexNet (``lpips_sfn``), ArcFace (``id_sfn``) and Inception (``fid_sfn``);
the real networks are used only when their weights are on disk (:class:`LPIPS`, ``InceptionExtractor``), and
nothing is ever downloaded. Feature-network metrics accept any object with the SFN's methods
``features(x) -> list of [N, C, h, w]`` and ``embed(x) -> [N, D]``.

Distribution-level metrics (FID, U-IDS / P-IDS, extractors) live in :mod:`ganinv.fid` and are re-exported.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .fid import (
    InceptionExtractor,
    MissingWeightsError,
    SFNExtractor,
    SFNTextureExtractor,
    compute_features,
    feature_statistics,
    fid,
    find_weights,
    frechet_distance,
    ids_scores,
    realism_scores,
)

__all__ = [
    "METRIC_NAMES", "LPIPS", "MissingWeightsError", "mse", "psnr", "ssim", "lpips_features", "id_similarity",
    "DlibFaceEmbedder", "id_dlib",
    "pairwise_diversity", "seam_excess", "summarize", "feature_statistics", "frechet_distance", "fid",
    "compute_features",
    "SFNExtractor", "InceptionExtractor", "ids_scores", "find_weights", "SFNTextureExtractor",
    "realism_scores", "mae",
]  # fmt: skip

METRIC_NAMES: dict[str, str] = {
    "mse": "MSE: mean squared pixel error on [-1, 1] images (masked: mean over the masked pixels only)",
    "mae": "MAE: mean absolute pixel error on [-1, 1] images",
    "psnr": "PSNR (dB) with data range 2 ([-1, 1] images); inf for identical images",
    "ssim": "SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, [0, 1]-rescaled, channel mean",
    "lpips_alex": "LPIPS v0.1, ImageNet AlexNet trunk (lpips package, local torchvision weights)",
    "lpips_vgg": "LPIPS v0.1, ImageNet VGG16 trunk (lpips package, local torchvision weights)",
    "lpips_sfn": "LPIPS-SFN: normalised multi-layer SFN feature distance (not AlexNet LPIPS)",
    "id_sfn": "ID-SFN: cosine similarity of SFN embeddings (not ArcFace)",
    "id_arcface": "ID-ArcFace: cosine similarity of IR-SE50 ArcFace embeddings (local weights)",
    "id_dlib": "ID-dlib: cosine similarity of dlib's 128-d face descriptors (face-recognition-models' "
    "ResNet, on 150 px chips aligned from 68 landmarks of the largest detected face); NaN without a face",
    "fid_sfn": "FID-SFN: Frechet distance of SFN embeddings (not Inception; not comparable to papers)",
    "fid_sfn_texture": "FID-SFN-texture: Frechet distance of the per-channel mean and std of the first two "
    "SFN stages (low-level texture statistics, which the embedding of fid_sfn is trained to ignore)",
    "realism_sfn_texture": "Realism-SFN-texture: k-NN realism score (Kynkaanniemi et al. 2019, k=3, densest "
    "half of the real balls) of each image's z-scored SFN texture statistics against held-out SynthFaces; "
    "higher is more real, > 1 inside a real ball",
    "realism_sfn": "Realism-SFN: the k-NN realism score on z-scored SFN embeddings (the fid_sfn features)",
    "fid_inception_tv": "FID-Inception(torchvision): torchvision Inception-v3 pool features; not the TF-FID "
    "network, so not comparable to published FIDs",
    "u_ids_sfn": "U-IDS-SFN: linear-SVM misclassification rate, real vs fake SFN embeddings "
    "(re-implementation)",
    "p_ids_sfn": "P-IDS-SFN: fraction of pairs with SVM score(fake) > score(real), SFN embeddings "
    "(re-implementation)",
    "u_ids_inception_tv": "U-IDS-Inception(torchvision): as u_ids_sfn on torchvision Inception-v3 features",
    "p_ids_inception_tv": "P-IDS-Inception(torchvision): as p_ids_sfn on torchvision Inception-v3 features",
    "diversity_lpips_sfn": "Diversity-SFN: mean pairwise LPIPS-SFN between the k samples of one input "
    "(inside the holes when masked)",
    "seam_excess": "Seam excess: mean colour step across the hole border of a pasted completion minus the "
    "original's step there ([-1, 1] units; 0 = as smooth as the original)",
    "diversity_lpips_alex": "Diversity-AlexNet: mean pairwise AlexNet LPIPS between the k samples of one "
    "input (inside the holes when masked)",
}


# --------------------------------------------------------------------------------------- validation


def _check_images(x, name: str) -> None:
    if not torch.is_tensor(x):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected images of shape [N, 3, H, W], got {list(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor with values in [-1, 1], got dtype {x.dtype}")


def _check_pair(x, y) -> None:
    _check_images(x, "x")
    _check_images(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {list(x.shape)} and {list(y.shape)}")


def _check_mask(mask, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(mask):
        raise ValueError(f"mask: expected a torch.Tensor, got {type(mask).__name__}")
    n, _, h, w = x.shape
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, n) or tuple(mask.shape[2:]) != (h, w):
        raise ValueError(
            f"mask: expected shape [{n}, 1, {h}, {w}] (1 = pixels to include), got {list(mask.shape)}"
        )
    mask = mask.to(device=x.device, dtype=x.dtype)
    if mask.numel() and (mask.min() < 0 or mask.max() > 1):
        raise ValueError("mask: values must lie in [0, 1] (1 = pixels to include)")
    return mask


# ------------------------------------------------------------------------------------ pixel metrics


def mse(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per image ``[N]``; with ``mask``, the mean over masked pixels and channels only."""
    _check_pair(x, y)
    err = (x - y).pow(2)
    if mask is None:
        return err.mean(dim=(1, 2, 3))
    mask = _check_mask(mask, x).expand(x.shape[0], 1, *x.shape[2:])
    weight = mask.sum(dim=(1, 2, 3))
    if (weight == 0).any():
        empty = torch.nonzero(weight == 0).flatten().tolist()
        raise ValueError(f"mask: images {empty} have no pixel to include (mask is all zero)")
    return (err * mask).sum(dim=(1, 2, 3)) / (weight * x.shape[1])


def mae(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel error per image ``[N]`` (channels and pixels averaged)."""
    _check_pair(x, y)
    return (x - y).abs().mean(dim=(1, 2, 3))


def psnr(
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, data_range: float = 2.0
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image ``[N]``: 10 log10(data_range² / MSE).

    ``data_range`` is 2 for [-1, 1] images. Identical images (MSE 0) give ``inf``, which is kept as such.
    """
    return 10.0 * torch.log10(data_range**2 / mse(x, y, mask))


def _gaussian_kernel(window: int, sigma: float, dtype: torch.dtype, device) -> torch.Tensor:
    t = torch.arange(window, dtype=dtype, device=device) - (window - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image ``[N]``, in [-1, 1] (1 for identical images).

    Images are rescaled from [-1, 1] to [0, 1] (so L = 1, C1 = 0.01², C2 = 0.03²); local means, variances
    and covariance use a ``window`` x ``window`` Gaussian of std ``sigma`` over the window positions that
    fit entirely inside the image ("valid", as in the authors' MATLAB code); the SSIM map is averaged over
    space and then over the three channels.
    """
    _check_pair(x, y)
    if not 1 <= window <= min(x.shape[2:]):
        raise ValueError(f"ssim: window {window} must be between 1 and the image size {list(x.shape[2:])}")
    x, y = (x + 1) / 2, (y + 1) / 2
    g = _gaussian_kernel(window, sigma, x.dtype, x.device)
    c = x.shape[1]
    kh, kw = g.view(1, 1, window, 1).expand(c, 1, -1, -1), g.view(1, 1, 1, window).expand(c, 1, -1, -1)

    def blur(t):
        return F.conv2d(F.conv2d(t, kh, groups=c), kw, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))


# ------------------------------------------------------------------------------------------- LPIPS


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al. 2018) from the ``lpips`` package with its real ImageNet trunk, read locally.

    The ``lpips`` package would download the torchvision trunk; here it is built with a random trunk
    (``pnet_rand=True``; its own small linear-layer weights ship with the package) and the trunk weights
    are then loaded from ``weights_path``, ``$GANINV_LPIPS_TRUNK`` (a file or a folder holding it) or the
    torchvision cache ``$TORCH_HOME/hub/checkpoints/`` — ``alexnet-owt-7be5be79.pth`` for ``net="alex"``,
    ``vgg16-397923af.pth`` for ``net="vgg"``. If the file is absent, :class:`MissingWeightsError` names it.
    ``forward(x, y)`` takes [-1, 1] images and returns ``[N]``; the parameters are frozen, gradients flow to
    the inputs (usable as a loss). Metric key: ``self.key`` (``"lpips_alex"`` / ``"lpips_vgg"``).
    """

    TRUNK_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}

    def __init__(self, net: str = "alex", weights_path: str | os.PathLike | None = None):
        super().__init__()
        if net not in self.TRUNK_FILES:
            raise ValueError(f"LPIPS: net must be one of {sorted(self.TRUNK_FILES)}, got {net!r}")
        path = find_weights(
            self.TRUNK_FILES[net], f"LPIPS(net={net!r})", weights_path, env="GANINV_LPIPS_TRUNK"
        )
        import lpips

        with warnings.catch_warnings():  # torchvision's deprecation notes about lpips's `pretrained=` calls
            warnings.filterwarnings("ignore", category=UserWarning, message=".*(pretrained|weights).*")
            self.model = lpips.LPIPS(net=net, verbose=False, pretrained=True, pnet_rand=True)
        self._load_trunk(path, net)
        self.model.eval().requires_grad_(False)
        self.net, self.key = net, f"lpips_{net}"

    def _load_trunk(self, path, net: str) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path} is not a readable PyTorch weights file: {err}") from err
        trunk, mapped = self.model.net, {}
        # lpips splits torchvision's `features` Sequential into slices that keep the original child indices.
        for slice_name, part in trunk.named_children():
            for index, layer in part.named_children():
                for pname, _ in layer.named_parameters(recurse=False):
                    key = f"features.{index}.{pname}"
                    if key not in state:
                        raise ValueError(f"{path} does not hold the torchvision {net!r} weights: no {key!r}")
                    mapped[f"{slice_name}.{index}.{pname}"] = state[key]
        try:
            trunk.load_state_dict(mapped, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path}: weights do not fit the LPIPS trunk: {err}") from err

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y)
        self.model.eval()
        return self.model(x, y).flatten()


# ------------------------------------------------------------------------- feature-network metrics


def _as_list(feats) -> list[torch.Tensor]:
    return [feats] if torch.is_tensor(feats) else list(feats)


def lpips_features(x: torch.Tensor, y: torch.Tensor, net) -> torch.Tensor:
    """LPIPS-SFN: the LPIPS recipe with a feature network and no learned linear weights, per image ``[N]``.

    For every layer of ``net.features``: unit-normalise each pixel's feature vector along channels
    (f / (|f| + 1e-10)), take the squared difference, **sum over channels** (so each layer lies in [0, 4]
    whatever its width) and average over space; then sum over layers. This is what
    ``lpips.LPIPS(lpips=False)`` computes (all linear weights 1), with ``net`` as the trunk. Identical inputs
    give 0; it is invariant to a positive per-pixel rescaling of the features. 2-D features ``[N, C]`` count
    as a 1x1 map.
    """
    _check_pair(x, y)
    return _lpips_of_features(net.features(x), net.features(y), x)


def _lpips_of_features(fx, fy, x: torch.Tensor) -> torch.Tensor:
    """:func:`lpips_features` from the two images' ``net.features`` (already computed), in ``x``'s dtype."""
    fx, fy = _as_list(fx), _as_list(fy)
    if len(fx) != len(fy) or not fx:
        raise ValueError("lpips_features: net.features returned no layers or different numbers of layers")
    total = x.new_zeros(x.shape[0])
    for a, b in zip(fx, fy):
        a, b = a.reshape(*a.shape[:2], -1), b.reshape(*b.shape[:2], -1)
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        total = total + (a - b).pow(2).sum(dim=1).mean(dim=1).to(total.dtype)
    return total


def id_similarity(x: torch.Tensor, y: torch.Tensor, net) -> torch.Tensor:
    """Identity similarity per image ``[N]``: cosine of ``net.embed`` (ID-SFN with the SFN, ID-ArcFace with an
    ArcFace wrapper). 1 for identical inputs."""
    _check_pair(x, y)
    return _cosine_of_embeddings(net.embed(x), net.embed(y))


def _cosine_of_embeddings(ex: torch.Tensor, ey: torch.Tensor) -> torch.Tensor:
    """:func:`id_similarity` from the two images' ``net.embed`` (already computed): ``[N]``."""
    return F.cosine_similarity(ex.flatten(1), ey.flatten(1), dim=1, eps=1e-8)


class DlibFaceEmbedder:
    """dlib's face descriptor as an ``embed`` network for :func:`id_similarity` (the ``id_dlib`` metric).

    Per image: dlib's HOG detector finds the faces, the 68-point shape predictor marks the largest (highest
    score), and ``face_recognition_model_v1`` (``dlib_face_recognition_resnet_model_v1.dat``, a ResNet trained
    for face verification) maps the 150x150 chip it aligns from those landmarks to 128 numbers. The models
    come from the ``face-recognition-models`` package (``pip install -e '.[faces]'``); nothing is downloaded.
    ``upsample``: detector up-sampling (None: 1, or 2 for images under 128 px). Runs on the CPU.
    """

    def __init__(self, upsample: int | None = None) -> None:
        from .data.align import FACES_EXTRA, AlignError, _model_file

        try:
            import dlib
        except ImportError:
            raise MissingWeightsError(f"id_dlib needs dlib, which is not installed: {FACES_EXTRA}") from None
        try:
            shape_file = _model_file("shape_predictor_68_face_landmarks.dat")
            model_file = _model_file("dlib_face_recognition_resnet_model_v1.dat")
        except AlignError as e:
            raise MissingWeightsError(f"id_dlib: {e}") from None
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(shape_file))
        self.model = dlib.face_recognition_model_v1(str(model_file))
        self.upsample = upsample

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> [N, 128] descriptors (a NaN row where no face is found)."""
        import numpy as np

        _check_images(x, "images")
        pixels = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        pixels = pixels.permute(0, 2, 3, 1).numpy()  # [N, H, W, 3] RGB
        up = self.upsample if self.upsample is not None else (1 if min(x.shape[-2:]) >= 128 else 2)
        out = torch.full((x.shape[0], 128), float("nan"))
        for i, img in enumerate(pixels):
            img = np.ascontiguousarray(img)
            rects, scores, _ = self.detector.run(img, up, 0.0)
            if len(rects):
                best = rects[max(range(len(rects)), key=lambda j: scores[j])]
                shape = self.predictor(img, best)
                out[i] = torch.tensor(list(self.model.compute_face_descriptor(img, shape)))
        return out.to(x.device)


@functools.lru_cache(maxsize=1)
def _dlib_embedder() -> DlibFaceEmbedder:
    return DlibFaceEmbedder()


def id_dlib(x: torch.Tensor, y: torch.Tensor, embedder: DlibFaceEmbedder | None = None) -> torch.Tensor:
    """ID-dlib per image ``[N]``: cosine similarity of dlib's face descriptors of ``x`` and ``y`` (aligned
    real faces; NaN where either image shows no detectable face). The models load once per process;
    :class:`MissingWeightsError` names the install command when dlib or its models are missing."""
    _check_pair(x, y)
    embedder = _dlib_embedder() if embedder is None else embedder
    return _cosine_of_embeddings(embedder.embed(x), embedder.embed(y))


def pairwise_diversity(
    samples: torch.Tensor | Sequence[torch.Tensor],
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean pairwise ``distance`` between the K samples of each input, ``[N]`` (diversity of inpaintings).

    ``samples``: ``[K, N, 3, H, W]`` or a list of K ``[N, 3, H, W]``, K >= 2; ``distance(a, b) -> [N]``, e.g.
    ``lambda a, b: lpips_features(a, b, sfn)``. Averages over the K(K-1)/2 unordered pairs.

    With ``mask`` (1 = hole, the region whose diversity is measured) every sample is first composited onto the
    *first* sample outside the mask, ``s_k * m + s_0 * (1 - m)``: all composites agree outside the holes, so
    only the hole contents differ, while a feature network still sees a natural image (zeroing the outside
    would show it large grey areas instead). A distance with a receptive field still feels the hole edges.
    """
    if torch.is_tensor(samples):
        stack = samples
    else:
        samples = list(samples)
        shapes = {tuple(s.shape) for s in samples}
        if len(shapes) != 1:
            raise ValueError(f"samples: all K samples must have the same shape, got {sorted(shapes)}")
        stack = torch.stack(samples)
    if stack.ndim != 5 or stack.shape[0] < 2:
        raise ValueError(f"samples: expected [K, N, 3, H, W] with K >= 2, got {list(stack.shape)}")
    _check_images(stack[0], "samples[k]")
    if mask is not None:
        mask = _check_mask(mask, stack[0])
        stack = stack * mask + stack[0:1] * (1 - mask)
    k = stack.shape[0]
    total = 0.0
    for i in range(k):
        for j in range(i + 1, k):
            total = total + distance(stack[i], stack[j])
    return total / (k * (k - 1) / 2)


# ------------------------------------------------------------------------------------------ summary


def seam_excess(done: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, hinge: bool = False) -> torch.Tensor:
    """Per image [N]: mean over the 4-neighbour pixel pairs (p known, q in the hole) of
    ``|done(p) - done(q)| - |x(p) - x(q)|`` (channel mean, pixel values in [-1, 1]): how much larger the
    colour step across the hole border of the completion ``done`` is than the original's step there
    (0 for images without border pairs). ``done`` [N, 3, H, W], ``x`` likewise, ``mask`` [N, 1, H, W].
    ``hinge``: only the excess of each pair counts (``max(0, ...)``), the seam loss of inpainting training,
    which then cannot buy a smaller value by blurring borders that were sharp in ``x``."""
    total, count = done.new_zeros(done.shape[0]), done.new_zeros(done.shape[0])
    for dim in (2, 3):  # vertical, horizontal neighbours
        n = done.shape[dim] - 1
        m0, m1 = mask.narrow(dim, 0, n), mask.narrow(dim, 1, n)
        border = (m0 - m1).abs()  # [N, 1, ...] 1 where exactly one of the pair is known
        step_done = (done.narrow(dim, 0, n) - done.narrow(dim, 1, n)).abs().mean(1, keepdim=True)
        step_x = (x.narrow(dim, 0, n) - x.narrow(dim, 1, n)).abs().mean(1, keepdim=True)
        excess = (step_done - step_x).clamp(min=0) if hinge else step_done - step_x
        total = total + (excess * border).sum((1, 2, 3))
        count = count + border.sum((1, 2, 3))
    return total / count.clamp(min=1)


def summarize(metrics: Mapping[str, object]) -> dict[str, float]:
    """Plain floats for a metrics JSON: ``key`` -> mean and ``key_std`` -> standard deviation (population,
    only when there are several values) for tensors and sequences; numbers pass through as floats.

    Non-finite values are kept (PSNR of a perfect reconstruction is inf, and then the mean is inf and the std
    NaN; ``json.dump`` writes Infinity / NaN).
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        t = torch.as_tensor(value, dtype=torch.float64).detach().cpu().flatten()
        if t.numel() == 0:
            raise ValueError(f"summarize: {key!r} is empty")
        out[key] = float(t.mean())
        if t.numel() > 1:
            std = float(t.std(unbiased=False)) if torch.isfinite(t).all() else math.nan
            out[f"{key}_std"] = std
    return out
