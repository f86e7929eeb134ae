"""One entry point, :func:`invert`, for every inversion method of the project, incl. optimisation baselines.

**Optimisation** (:func:`optimize_w`, :func:`optimize_w_plus`) follows Image2StyleGAN (Abdal et al., ICCV
2019: optimise a code in W or in the extended space W+, starting from the mean w, with a pixel MSE plus a
perceptual loss) with the schedule of the StyleGAN2 projector (Karras et al., CVPR 2020, Sec. 5 and App. D):
Adam (β = 0.9, 0.999); learning rate ``lr · min(1, t / rampup) · (1 - cos(π min(1, (1 - t) / rampdown))) / 2``
at ``t = step / steps``; and, early on, Gaussian **latent noise** added to the code in the forward pass only,
of std ``σ_w · noise_factor · max(0, 1 - t / noise_ramp)²`` (σ_w = RMS distance of mapped codes from w_avg),
which lets the search move across wide basins before it settles. Deviations: the projector also optimises
G's per-layer noise maps (with a regulariser) — here they stay fixed (``noise_mode``, "const" by default),
so every code lives purely in W / W+; the loss is MSE + LPIPS-SFN (weights 1 and 1, Image2StyleGAN's
λ_mse = 1) by default, or the real AlexNet / VGG LPIPS when its weights are local (``perceptual="alex"``).
Images smaller than G's output (e.g. 256 px targets for a 1024 px G) are compared with G's output
average-pooled to their size. The last iterate is returned, as the projector does.

**Encoders** (one forward pass): pSp and e4e (``ganinv.models.encoders``) give w+; CLCAE (Liu et al., CVPR
2023, ``ganinv.models.clcae``) gives its foundation code w, w+ and the F feature f; ``clcae-w`` /
``clcae-w+`` / ``clcae-f`` reconstruct with G(w), G(w+) and G(w+, f) (the paper's I¹, I², I³). Encoder
images must have the encoder's input size; G's output is average-pooled to it when G is larger (as CLCAE's
release pools 1024 -> 256). ``seconds`` counts the encoder and the G pass(es), per image.

**Released checkpoints**: ``encoder=`` may also be an official pSp / e4e / CLCAE file (``psp_ffhq_encode.pt``,
``e4e_ffhq_encode.pt``, CLCAE's FFHQ inversion model) or an :class:`~ganinv.models.official.OfficialEncoder`
(:func:`ganinv.official_checkpoints.load_encoder`); ``generator=`` the same file (its ``decoder.*``). Images
of any square size are then resized to 256 as pSp's transform does, ``latent_avg`` is added
(``start_from_latent_avg``), CLCAE's average image subtracted, and CLCAE's f replaces G's 16x16 feature after
that resolution's ToRGB, as released (``InversionResult.f_before_rgb`` is False).

Images: float ``[N, 3, S, S]`` (or one ``[3, S, S]``) in [-1, 1]; ``uint8`` tensors are accepted and mapped
by ``p / 127.5 - 1``. Wrong channels, dtype, range or size raise :class:`~ganinv.data.images.ImageError`
naming the size that was expected and why (G's output size or the encoder's input size).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoints import CheckpointError, atomic_save, bundled_name, load_generator, pretrained_dir
from .data.images import ImageError, check_images, load_image, pool_to, save_image
from .devices import resolve_device, sync
from .losses import LossWeights, ReconstructionLoss
from .models.clcae import CLCAE, load_clcae, reconstruct
from .models.encoders import E4EEncoder, PSPEncoder, load_encoder
from .models.official import OfficialEncoder
from .official_checkpoints import is_official_checkpoint
from .official_checkpoints import load_encoder as load_official_encoder

METHODS: dict[str, str] = {
    "optim-w": "optimise one w per image (Image2StyleGAN / StyleGAN2 projector in W); image G(w)",
    "optim-w+": "optimise one w+ per image (Image2StyleGAN's extended space W+); image G(w+)",
    "psp": "pSp encoder (Richardson et al. 2021): w+ in one forward pass; image G(w+)",
    "e4e": "e4e encoder (Tov et al. 2021): base w plus per-layer deltas = w+; image G(w+)",
    "clcae-w": "CLCAE foundation code w (contrastively aligned W); image G(w), the paper's I1",
    "clcae-w+": "CLCAE w+ = w + cross-attention offsets; image G(w+), the paper's I2",
    "clcae-f": "CLCAE w+ and the cross-attention F feature f; image G(w+, f), the paper's I3",
}
# encoder family -> (checkpoint kind, class, command that trains it)
ENCODERS = {
    "psp": ("psp_encoder", PSPEncoder, "ganinv train psp"),
    "e4e": ("e4e_encoder", E4EEncoder, "ganinv train e4e"),
    "clcae": ("clcae", CLCAE, "ganinv train clcae"),
}


@dataclass
class InversionResult:
    """Codes and reconstruction of one :func:`invert` call (tensors on the device the work ran on).

    ``w`` [N, D] (the W code, when the method has one: optim-w, e4e's base code, CLCAE's foundation code),
    ``w_plus`` [N, L, D], ``f`` [N, C, f_res, f_res] (clcae-f only), ``image`` [N, 3, S, S] the reconstruction
    at the input size, ``seconds`` wall time per image, ``losses`` the total loss per optimisation step.
    ``f_before_rgb``: where f replaces G's feature (False for released CLCAE checkpoints: after the ToRGB).
    """

    method: str
    image: torch.Tensor
    w: torch.Tensor | None = None
    w_plus: torch.Tensor | None = None
    f: torch.Tensor | None = None
    f_res: int | None = None
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    f_before_rgb: bool = True

    @property
    def latent(self) -> torch.Tensor:
        """The code the image was synthesised from: ``w_plus`` if present, else ``w``."""
        return self.w_plus if self.w_plus is not None else self.w

    def synthesize(self, G: nn.Module, noise_mode: str = "const") -> torch.Tensor:
        """Re-render at G's size: G(latent) or G(w+, f) -> [N, 3, G.size, G.size]."""
        kw = dict(f=self.f, f_res=self.f_res, f_before_rgb=self.f_before_rgb) if self.f is not None else {}
        return G.synthesis(self.latent, noise_mode=noise_mode, **kw)

    def latents(self, i: int | None = None) -> dict:
        """``{"method", "w", "w_plus", "f", "f_res", "f_before_rgb", "seconds"}`` on the CPU (rows
        ``[i:i+1]`` if ``i``)."""

        def cut(t):
            return None if t is None else (t if i is None else t[i : i + 1]).detach().cpu()

        codes = {k: cut(getattr(self, k)) for k in ("w", "w_plus", "f")}
        return dict(
            method=self.method,
            **codes,
            f_res=self.f_res,
            f_before_rgb=self.f_before_rgb,
            seconds=self.seconds,
        )


# ---------------------------------------------------------------------------------------------------------
# Inputs


def prepare_images(images: torch.Tensor, size: int | None, why: str) -> torch.Tensor:
    """[N, 3, S, S] float in [-1, 1] (a single [3, S, S] gets a batch axis; uint8 is mapped p / 127.5 - 1);
    ImageError unless ``S == size`` (``why`` names whose size that is; ``size=None``: any square size)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor [N, 3, S, S], got {type(images).__name__}")
    x = images.unsqueeze(0) if images.ndim == 3 else images
    if x.dtype == torch.uint8:
        x = x.float() / 127.5 - 1
    check_images(x, None, "images")
    if size is not None and x.shape[-1] != size:
        raise ImageError(
            f"images are {x.shape[-2]}x{x.shape[-1]} but {why} is {size}x{size}; resize them first "
            f"(ganinv.data.images.load_image(path, size={size}) does it for files)"
        )
    return x


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


# ---------------------------------------------------------------------------------------------------------
# Optimisation baselines


@functools.lru_cache(maxsize=4)
def default_loss(perceptual: str = "sfn", device: str = "cpu") -> ReconstructionLoss:
    """MSE + perceptual (weights 1, 1; no ID term): LPIPS-SFN with the bundled SFN (``"sfn"``), or the real
    LPIPS with local AlexNet / VGG weights (``"alex"`` / ``"vgg"``; a clear error names a missing file)."""
    weights = LossWeights(mse=1.0, lpips=1.0, id=0.0)
    if perceptual == "sfn":
        from .models.sfn import load_sfn

        return ReconstructionLoss(weights, feature_net=load_sfn("sfn", device=device))
    if perceptual in ("alex", "vgg"):
        from .metrics import LPIPS

        return ReconstructionLoss(weights, lpips=LPIPS(perceptual).to(device))
    raise ValueError(f"perceptual must be 'sfn', 'alex' or 'vgg', got {perceptual!r}")


@torch.no_grad()
def latent_std(G: nn.Module, n: int = 10000, seed: int = 0) -> float:
    """σ_w: root mean squared distance ``||w - w_avg||`` of ``n`` mapped codes (StyleGAN2 projector)."""
    z = torch.randn(n, G.style_dim, generator=torch.Generator().manual_seed(seed)).to(_device_of(G))
    return float((G.style(z) - G.get_w_avg()).pow(2).sum(1).mean().sqrt())


def lr_at(t: float, lr: float, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """The projector's learning rate at progress ``t`` in [0, 1): linear ramp-up, cosine ramp-down."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * (min(1.0, t / rampup) if rampup > 0 else 1.0)


def _initial_code(G: nn.Module, init, n: int, plus: bool, seed: int) -> torch.Tensor:
    """w [N, D] or w+ [N, L, D] to start from: "w_avg", "random" (a mapped z) or a tensor."""
    d, dev = G.style_dim, _device_of(G)
    if isinstance(init, torch.Tensor):
        code = init.detach().to(dev, torch.float32)
        code = code.expand(n, d) if code.shape == (d,) else code
        if plus:
            code = G.broadcast(code) if code.ndim == 2 else code
        expected = (n, G.n_latent, d) if plus else (n, d)
        if tuple(code.shape) != expected:
            raise ValueError(
                f"init has shape {list(init.shape)}; expected [{d}], [{n}, {d}]"
                + (f" or [{n}, {G.n_latent}, {d}]" if plus else "")
            )
    elif init == "w_avg":
        code = G.get_w_avg().detach().expand(n, d)
    elif init == "random":
        z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(dev)
        with torch.no_grad():
            code = G.style(z)
    else:
        raise ValueError(f"init must be 'w_avg', 'random' or a tensor, got {init!r}")
    code = G.broadcast(code) if plus and code.ndim == 2 else code
    return code.clone().float()


def _optimize(G: nn.Module, images: torch.Tensor, plus: bool, hp: dict) -> InversionResult:
    """The loop shared by :func:`optimize_w` and :func:`optimize_w_plus`; ``hp``: their hyper-parameters."""
    steps, lr, noise_mode, noise_factor, noise_ramp = (
        hp[k] for k in ("steps", "lr", "noise_mode", "noise_factor", "noise_ramp")
    )
    if steps < 1 or lr <= 0:
        raise ValueError(f"need steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
    dev = _device_of(G)
    size = images.shape[-1] if isinstance(images, torch.Tensor) and images.ndim >= 3 else G.size
    if not 0 < size <= G.size or G.size % size:  # G's output must pool to the target size
        size = G.size
    target = prepare_images(images, size, "the generator's output size (or a size it pools to evenly)")
    target = target.to(dev)
    loss = default_loss("sfn", str(dev)) if hp["loss"] is None else hp["loss"]
    goal = loss.prepare(target) if isinstance(loss, ReconstructionLoss) else target  # target features once
    n = target.shape[0]
    code = _initial_code(G, hp["init"], n, plus, hp["seed"]).requires_grad_(True)  # [N, D] or [N, L, D]
    opt = torch.optim.Adam([code], lr=lr, betas=(0.9, 0.999))
    sigma = latent_std(G) if noise_factor > 0 else 0.0
    gen = torch.Generator(device=dev).manual_seed(hp["seed"])
    history: list[float] = []
    bar = None
    if hp["progress"]:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="optim-w+" if plus else "optim-w", unit="step")
    sync(dev)
    start = time.perf_counter()
    for step in range(steps):
        t = step / steps
        for group in opt.param_groups:
            group["lr"] = lr_at(t, lr, hp["lr_rampup"], hp["lr_rampdown"])
        scale = sigma * noise_factor * max(0.0, 1.0 - t / noise_ramp) ** 2 if noise_ramp > 0 else 0.0
        noisy = code + scale * torch.randn(code.shape, generator=gen, device=dev) if scale > 0 else code
        x_hat = pool_to(G.synthesis(noisy, noise_mode=noise_mode), size)  # [N, 3, S, S]
        out = loss(x_hat, goal)
        total = out["total"] if isinstance(out, dict) else out
        total = total.sum() if total.ndim else total
        (grad,) = torch.autograd.grad(total, [code])  # no gradient accumulates in G's parameters
        code.grad = grad
        opt.step()
        history.append(float(total.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    if bar is not None:
        bar.close()
    code = code.detach()
    with torch.no_grad():
        image = pool_to(G.synthesis(code, noise_mode=noise_mode), size)
    sync(dev)
    seconds = (time.perf_counter() - start) / n
    method = "optim-w+" if plus else "optim-w"
    w, w_plus = (None, code) if plus else (code, None)
    return InversionResult(method, image, w, w_plus, seconds=seconds, losses=history)


# fmt: off
def optimize_w(G: nn.Module, images: torch.Tensor, *, steps: int = 1000, lr: float = 0.1,
               loss: Callable | None = None, noise_mode: str = "const", init="w_avg", seed: int = 0,
               lr_rampup: float = 0.05, lr_rampdown: float = 0.25, noise_factor: float = 0.05,
               noise_ramp: float = 0.75, progress: bool = False) -> InversionResult:
    """Find one w [N, D] per image with G(w) ≈ image (Image2StyleGAN in W; StyleGAN2 projector, Sec. 5).

    Keyword-only hyper-parameters (defaults: the StyleGAN2 projector's): ``steps`` 1000, ``lr`` 0.1,
    ``loss`` a callable ``(x_hat, x) -> tensor or dict with "total"`` (None: :func:`default_loss`, MSE +
    LPIPS-SFN), ``noise_mode`` of G's per-layer noise (fixed, not optimised), ``init`` "w_avg" / "random" /
    a tensor (e.g. an encoder's code), ``seed`` (latent noise and "random" init), ``lr_rampup`` 0.05 and
    ``lr_rampdown`` 0.25 (fractions of the run), ``noise_factor`` 0.05 and ``noise_ramp`` 0.75 (latent
    noise std σ_w · factor · (1 - t / ramp)², 0 disables it), ``progress`` a tqdm bar.
    """
    hp = dict(locals())  # the keyword-only hyper-parameters (and G, images)
    return _optimize(hp.pop("G"), hp.pop("images"), False, hp)


def optimize_w_plus(G: nn.Module, images: torch.Tensor, *, steps: int = 1000, lr: float = 0.1,
                    loss: Callable | None = None, noise_mode: str = "const", init="w_avg", seed: int = 0,
                    lr_rampup: float = 0.05, lr_rampdown: float = 0.25, noise_factor: float = 0.05,
                    noise_ramp: float = 0.75, progress: bool = False) -> InversionResult:
    """Find one w+ [N, L, D] per image, a separate w per generator layer (Image2StyleGAN's W+); the
    hyper-parameters are those of :func:`optimize_w` (``init`` may also be a w+ [N, L, D])."""
    hp = dict(locals())
    return _optimize(hp.pop("G"), hp.pop("images"), True, hp)
# fmt: on


# ---------------------------------------------------------------------------------------------------------
# One entry point


def check_method(method: str) -> None:
    """ValueError listing :data:`METHODS` unless ``method`` is one of them."""
    if method not in METHODS:
        listing = "; ".join(f"{k}: {v}" for k, v in METHODS.items())
        raise ValueError(f"unknown inversion method {method!r}; choose one of {list(METHODS)} ({listing})")


def resolve_encoder(method: str, encoder, device: torch.device | str = "cpu") -> nn.Module:
    """The encoder module of an encoder ``method`` from a module, a checkpoint path or a bundled name
    (``data/pretrained/<name>/<kind>.pt``); a clear CheckpointError when a bundled one is not trained yet.
    A released pSp / e4e / CLCAE file (or an :class:`OfficialEncoder`) gives an :class:`OfficialEncoder`."""
    kind, cls, train = ENCODERS[method.split("-")[0]]
    if isinstance(encoder, OfficialEncoder) or (
        isinstance(encoder, (str, Path))
        and bundled_name(encoder) is None
        and is_official_checkpoint(Path(encoder).expanduser())
    ):
        official = encoder if isinstance(encoder, OfficialEncoder) else load_official_encoder(encoder)
        if official.kind != method.split("-")[0]:
            raise ValueError(
                f"method {method!r} cannot use a released {official.kind} encoder; use method "
                f"{official.kind!r}"
                + (" or 'clcae-w' / 'clcae-w+' / 'clcae-f'" if official.kind == "clcae" else "")
            )
        return official.to(device)
    if isinstance(encoder, nn.Module):
        if not isinstance(encoder, cls):
            raise TypeError(f"method {method!r} needs a {cls.__name__}, got {type(encoder).__name__}")
        return encoder.to(device)
    if encoder is None:
        raise ValueError(
            f"method {method!r} needs an encoder: a {cls.__name__}, a checkpoint path or a bundled name "
            "(--encoder on the command line)"
        )
    name = bundled_name(encoder)
    if name is not None:
        file = pretrained_dir() / name / f"{kind}.pt"
        if not file.is_file():
            raise CheckpointError(
                f"no pretrained model {name!r} for method {method!r} ({file} is missing); train it with "
                f"`{train}`, or pass the path of a {kind} checkpoint"
            )
    return load_clcae(encoder, device) if kind == "clcae" else load_encoder(encoder, kind, device)


def _default_encoder(generator) -> str | None:
    """The encoder a generator reference implies: its bundled name, or the file itself when it is a released
    pSp / e4e / CLCAE checkpoint (which holds both)."""
    name = bundled_name(generator)
    if (
        name is None
        and isinstance(generator, (str, Path))
        and is_official_checkpoint(Path(generator).expanduser())
    ):
        return str(generator)
    return name


def invert(
    images: torch.Tensor,
    method: str = "clcae-f",
    generator: nn.Module | str = "synthfaces64",
    encoder: nn.Module | str | None = None,
    device: str | None = None,
    **kwargs,
) -> InversionResult:
    """Invert ``images`` with one of :data:`METHODS` into ``generator`` (a module, a path or a bundled name).

    ``encoder`` (encoder methods only): a loaded module, a checkpoint path or a bundled name (default: the
    generator's name when that is a bundled name, or the generator's file when that is a released pSp / e4e /
    CLCAE checkpoint). ``device``: None = the generator module's device, or CUDA when available for a loaded
    one; modules are moved there. ``kwargs``: the optimisation hyper-parameters of :func:`optimize_w` for
    "optim-*", ``noise_mode`` for encoders.
    """
    check_method(method)
    if method.startswith("optim") and encoder is not None:
        raise ValueError(
            f"method {method!r} takes no encoder (start from an encoder's code with init=<tensor>)"
        )
    if isinstance(generator, nn.Module):
        dev = torch.device(device) if device else _device_of(generator)
        G = generator.to(dev)
    else:
        dev = resolve_device(device or "auto")
        G = load_generator(generator, device=dev)
        encoder = _default_encoder(generator) if encoder is None else encoder
    if method.startswith("optim"):
        fn = optimize_w_plus if method == "optim-w+" else optimize_w
        return fn(G, images, **kwargs)
    noise_mode = kwargs.pop("noise_mode", "const")
    if kwargs:
        raise TypeError(f"method {method!r} takes only noise_mode, not {sorted(kwargs)}")
    enc = resolve_encoder(method, encoder, dev)
    if isinstance(enc, OfficialEncoder):
        return _invert_official(enc, G, images, method, noise_mode, dev)
    family, size = method.split("-")[0], enc.cfg.backbone.size
    if family == "clcae":
        enc.check_generator(G)
        if method == "clcae-f" and not enc.cfg.use_f:
            raise ValueError("this CLCAE encoder has no F branch (use_f=False, CLCAE_W+); use 'clcae-w+'")
    elif (enc.cfg.n_latent, enc.cfg.style_dim) != (G.n_latent, G.style_dim):
        raise ValueError(
            f"{method} encoder (n_latent, style_dim) = {(enc.cfg.n_latent, enc.cfg.style_dim)} "
            f"does not fit the generator's {(G.n_latent, G.style_dim)}"
        )
    if G.size < size or G.size % size:
        raise ValueError(
            f"the generator's {G.size}px output cannot be pooled to the encoder's {size}px input"
        )
    x = prepare_images(images, size, f"the {method} encoder's input size").to(dev)
    w = w_plus = f = None
    was_training = enc.training
    enc.eval()  # dropout off; the mode is restored below
    sync(dev)
    start = time.perf_counter()
    with torch.no_grad():
        if family == "clcae":
            out = enc(x)
            mode = {"clcae-w": "w", "clcae-w+": "w_plus", "clcae-f": "f"}[method]
            image = reconstruct(G, out, mode, noise_mode=noise_mode)  # [N, 3, G.size, G.size]
            w, w_plus, f = out.w, None if mode == "w" else out.w_plus, out.f if mode == "f" else None
        else:
            if family == "e4e":
                w, deltas = enc.encode(x)  # [N, D], [N, L, D]
                w_plus = w.unsqueeze(1) + deltas
            else:
                w_plus = enc(x)  # [N, L, D]
            image = G.synthesis(w_plus, noise_mode=noise_mode)
        image = pool_to(image, size)  # [N, 3, S, S]
    enc.train(was_training)
    sync(dev)
    seconds = (time.perf_counter() - start) / x.shape[0]
    return InversionResult(method, image, w, w_plus, f, None if f is None else f.shape[-1], seconds)


def _invert_official(
    enc: OfficialEncoder, G: nn.Module, images, method: str, noise_mode: str, dev: torch.device
) -> InversionResult:
    """:func:`invert` with a released encoder: any square input size (resized to 256 as pSp's transform
    does); the image is G's output average-pooled to the input size when G's size is a multiple of it, else
    G's output as it is."""
    enc.check_generator(G)
    if method == "clcae-f" and not enc.has_f:
        raise ValueError(
            "this CLCAE checkpoint has no F branch (trained with --not_for_feature); use 'clcae-w+'"
        )
    if enc.config.input_nc != 3:
        raise ValueError(
            f"this {enc.kind} checkpoint takes {enc.config.input_nc}-channel inputs, not RGB images"
        )
    x = prepare_images(images, None, "").to(dev)
    size = x.shape[-1]
    out_size = size if size <= G.size and G.size % size == 0 else G.size
    enc.set_averages(G)  # only what the file lacks (CLCAE: x_avg, and latent_avg when not given)
    mode = {"clcae-w": "w", "clcae-w+": "w_plus", "clcae-f": "f"}.get(method, "w_plus")
    was_training = enc.training
    enc.eval()
    sync(dev)
    start = time.perf_counter()
    with torch.no_grad():
        codes = enc.encode(enc.prepare(x))
        image = pool_to(enc.render(G, codes, mode, noise_mode), out_size)  # [N, 3, out_size, out_size]
    enc.train(was_training)
    sync(dev)
    seconds = (time.perf_counter() - start) / x.shape[0]
    w_plus = None if mode == "w" else codes.w_plus
    f = codes.f if mode == "f" else None
    f_res = None if f is None else f.shape[-1]
    return InversionResult(method, image, codes.w, w_plus, f, f_res, seconds, f_before_rgb=f is None)


# ---------------------------------------------------------------------------------------------------------
# Files (the `ganinv invert` command)


def invert_files(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    method: str = "clcae-f",
    generator: str = "synthfaces64",
    encoder: str | None = None,
    device: str | None = None,
    batch_size: int = 8,
    log: Callable[[str], None] = print,
    **kwargs,
) -> list[Path]:
    """Invert image files; write ``<out_dir>/<stem>.png`` (reconstruction) and ``<stem>.pt`` (``{"method",
    "generator", "source", "w", "w_plus", "f", "f_res", "seconds"}``, tensors with a batch axis of 1) per
    input. Every image is read and checked before anything is written; square images of another size are
    resized (Lanczos, noted via ``log``), non-square or unreadable ones raise ImageError."""
    check_method(method)
    dev = resolve_device(device or "auto")
    G = load_generator(generator, device=dev)
    enc = None
    if not method.startswith("optim"):
        enc = resolve_encoder(method, encoder if encoder is not None else _default_encoder(generator), dev)
    size = (
        G.size
        if enc is None
        else enc.input_size
        if isinstance(enc, OfficialEncoder)
        else enc.cfg.backbone.size
    )
    images = []
    for p in map(Path, paths):
        x = load_image(p)
        if tuple(x.shape[1:]) != (size, size):
            x = load_image(p, size=size)  # resizes a square image, refuses a non-square one
            log(f"note: {p}: resized to {size}x{size}")
        images.append(x)
    out, names, written = Path(out_dir), [], []
    for i, p in enumerate(map(Path, paths)):  # unique output stems
        names.append(p.stem if p.stem not in names else f"{p.stem}_{i}")
    for lo in range(0, len(images), max(1, batch_size)):
        batch = torch.stack(images[lo : lo + batch_size])
        res = invert(batch, method, G, encoder=enc, device=str(dev), **kwargs)
        for j in range(batch.shape[0]):
            stem, src = names[lo + j], str(paths[lo + j])
            written.append(save_image(res.image[j].cpu(), out / f"{stem}.png"))
            atomic_save(dict(res.latents(j), generator=str(generator), source=src), out / f"{stem}.pt")
            written.append(out / f"{stem}.pt")
    return written
