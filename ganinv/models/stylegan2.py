"""StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020).

Config-F generator ('skip' ToRGB architecture) and residual discriminator. Parameter names and shapes match
rosinality's stylegan2-pytorch for the same config, so its ``g_ema`` / ``d`` state dicts load with
``strict=True``. Weights are stored unscaled and the equalised-learning-rate constant is applied in forward
(Sec. 4.1 of Karras et al. 2018, "Progressive Growing of GANs").
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import FusedLeakyReLU
from .layers import Blur, ConvLayer, EqualLinear, PixelNorm, Upsample, check_shape

NOISE_MODES = ("const", "random", "none")


def channel_table(size: int, channel_multiplier: float = 2, channel_max: int = 512) -> dict[int, int]:
    """Feature channels per resolution: ``min(channel_max, 16384 * channel_multiplier / res)``.

    For channel_multiplier 1 or 2 and channel_max 512 this is rosinality's table (and NVIDIA's
    ``min(channel_base / res, channel_max)`` with channel_base = 16384 * channel_multiplier).
    """
    return {
        2**i: int(min(channel_max, 16384 * channel_multiplier // 2**i))
        for i in range(2, int(math.log2(size)) + 1)
    }


# Generator


class ModulatedConv2d(nn.Module):
    """Weight modulation and demodulation, Eqs. 1-3 of Karras et al. 2020.

    w'_ijk = s_i * w_ijk (1), w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps) (3); s = A(w) is the style.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        # True: per-sample grouped conv (Eqs. 1-3 literally); False: the equivalent form, faster on CPU
        self.fused = False

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, _, h, wd = x.shape
        s = self.modulation(w)  # [N, I]
        if not self.fused:
            return self._forward_unfused(x, s)
        s = s.view(n, 1, self.in_ch, 1, 1)  # [N, 1, I, 1, 1]
        weight = self.scale * self.weight * s  # [N, O, I, k, k]
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4], keepdim=True) + 1e-8)
        x = x.reshape(1, n * self.in_ch, h, wd)  # grouped conv: one group per sample
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(
                n * self.in_ch, self.out_ch, self.kernel_size, self.kernel_size
            )
            out = F.conv_transpose2d(x, weight, stride=2, groups=n)
            return self.blur(out.view(n, self.out_ch, out.shape[2], out.shape[3]))
        weight = weight.reshape(n * self.out_ch, self.in_ch, self.kernel_size, self.kernel_size)
        out = F.conv2d(x, weight, padding=self.kernel_size // 2, groups=n)
        return out.view(n, self.out_ch, h, wd)

    def _forward_unfused(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The same result with one shared weight: scale the input by s, convolve, scale the output by the
        demodulation coefficient (StyleGAN2 App. B). Much faster on CPU than the per-sample grouped conv."""
        weight = self.scale * self.weight[0]  # [O, I, k, k]
        x = x * s[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.kernel_size // 2)
        if self.demodulate:
            d = torch.rsqrt(s.pow(2) @ weight.pow(2).sum([2, 3]).t() + 1e-8)  # [N, O]
            out = out * d[:, :, None, None]
        return out


class NoiseInjection(nn.Module):
    """Per-pixel noise scaled by a learned strength (Sec. 2.1 of StyleGAN, B in Fig. 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return x if noise is None else x + self.weight * noise


class ConstantInput(nn.Module):
    """The learned 4x4 constant the synthesis network starts from."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, n: int) -> torch.Tensor:
        return self.input.expand(n, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv, then noise, then bias + leaky ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_ch, out_ch, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to RGB, added to the upsampled previous image (skip G)."""

    def __init__(
        self, in_ch: int, style_dim: int, upsample: bool = True, blur_kernel: Sequence[float] = (1, 3, 3, 1)
    ) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        return out if skip is None else out + self.upsample(skip)


class Generator(nn.Module):
    """StyleGAN2 generator: mapping z -> w, synthesis w or w+ -> image (Fig. 7b, config F, skip outputs).

    Latent index use: ``w_plus[:, 0]`` conv1, ``[:, 1]`` to_rgb1; for block k (resolution 2^(k+3)),
    ``[:, 2k+1]`` up-conv, ``[:, 2k+2]`` second conv, ``[:, 2k+3]`` ToRGB.
    """

    training_record: dict[str, int] | None = None  # step / images_seen of its file, set by load_generator

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: float = 2,
        channel_max: int = 512,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        lr_mlp: float = 0.01,
    ) -> None:
        super().__init__()
        if size < 4 or size & (size - 1):
            raise ValueError(f"Generator size must be a power of two >= 4, got {size}")
        self.size, self.style_dim, self.n_mlp = size, style_dim, n_mlp
        self.channel_multiplier, self.channel_max = channel_multiplier, channel_max
        self.blur_kernel, self.lr_mlp = tuple(blur_kernel), lr_mlp
        self.channels = channel_table(size, channel_multiplier, channel_max)
        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2

        layers = [PixelNorm()] + [
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True) for _ in range(n_mlp)
        ]
        self.style = nn.Sequential(*layers)

        c4 = self.channels[4]
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(c4, style_dim, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            r = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, r, r))
        in_ch = c4
        for i in range(3, self.log_size + 1):
            out_ch = self.channels[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_ch, style_dim, blur_kernel=blur_kernel))
            in_ch = out_ch
        # Mean of w (truncation centre); not part of the state dict, set by loaders or computed on demand.
        self.register_buffer("w_avg", torch.full((style_dim,), float("nan")), persistent=False)

    @property
    def config(self) -> dict:
        """Constructor arguments: ``Generator(**G.config)`` rebuilds this architecture."""
        return dict(
            size=self.size,
            style_dim=self.style_dim,
            n_mlp=self.n_mlp,
            channel_multiplier=self.channel_multiplier,
            channel_max=self.channel_max,
            blur_kernel=list(self.blur_kernel),
            lr_mlp=self.lr_mlp,
        )

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0) -> torch.Tensor:
        """Average of ``mapping(z)`` over ``n`` fixed random z: [style_dim]."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.style_dim, generator=gen).to(self.input.input.device)
        return self.style(z).mean(0)

    def get_w_avg(self) -> torch.Tensor:
        """The truncation centre: ``w_avg`` from the checkpoint, else ``mean_latent(4096)`` (cached)."""
        if torch.isnan(self.w_avg).any():
            self.w_avg.copy_(self.mean_latent())
        return self.w_avg

    def mapping(
        self, z: torch.Tensor, truncation: float = 1.0, truncation_latent: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z [N, style_dim] -> w [N, style_dim], optionally truncated: w_avg + psi * (w - w_avg)."""
        check_shape(z, [None, self.style_dim], "z")
        w = self.style(z)
        if truncation != 1.0:
            t = self.get_w_avg() if truncation_latent is None else truncation_latent
            w = t + truncation * (w - t)
        return w

    def make_noise(self, n: int = 1, mode: str = "random") -> list[torch.Tensor | None]:
        """Per-layer noise: fresh ('random'), the registered buffers ('const') or none."""
        if mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")
        if mode == "none":
            return [None] * self.num_layers
        bufs = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if mode == "const":
            return bufs
        return [torch.randn(n, 1, b.shape[2], b.shape[3], device=b.device, dtype=b.dtype) for b in bufs]

    def broadcast(self, ws: torch.Tensor) -> torch.Tensor:
        """w [N, style_dim] or w+ [N, n_latent, style_dim] -> w+ [N, n_latent, style_dim]."""
        if ws.ndim == 2:
            check_shape(ws, [None, self.style_dim], "ws")
            return ws.unsqueeze(1).repeat(1, self.n_latent, 1)
        check_shape(ws, [None, self.n_latent, self.style_dim], "ws")
        return ws

    def synthesis(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        f: torch.Tensor | None = None,
        f_res: int = 16,
        f_blend: float | torch.Tensor = 1.0,
        return_features: bool = False,
        noise: list[torch.Tensor | None] | None = None,
        feature_hook: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
        f_before_rgb: bool = True,
    ):
        """w or w+ -> image [N, 3, size, size].

        ``f`` [N, C(f_res), f_res, f_res] replaces the feature after the second conv at ``f_res`` (the F space
        of FS / HFGI / CLCAE), blended ``(1 - f_blend) * own + f_blend * f``, before that resolution's ToRGB;
        ``f_before_rgb=False`` replaces it after that ToRGB instead, where the next resolution reads it, as
        the FS / CLCAE release does (docs/papers/clcae.md §2.5: the ToRGB at ``f_res`` sees G's own feature).
        ``return_features`` also returns ``{res: feature}`` after the second conv of every resolution
        (conv1 at 4x4), i.e. after any replacement. ``feature_hook(res, x)``, when given, is called at the
        same points (after the F replacement) and its return value replaces the feature, e.g. for the
        mask-aware fusion of several resolutions in ``ganinv.models.inpainting``.
        """
        w_plus = self.broadcast(ws)  # [N, n_latent, style_dim]
        n = w_plus.shape[0]
        noise = self.make_noise(n, noise_mode) if noise is None else noise
        if f is not None:
            if f_res not in self.channels or f_res == 4:
                raise ValueError(f"f_res must be a resolution in 8..{self.size}, got {f_res}")
            check_shape(f, [n, self.channels[f_res], f_res, f_res], "f")

        features = {}
        x = self.conv1(self.input(n), w_plus[:, 0], noise[0])
        if feature_hook is not None:
            x = feature_hook(4, x)
        features[4] = x
        img = self.to_rgb1(x, w_plus[:, 1])
        for k, to_rgb in enumerate(self.to_rgbs):
            res = 2 ** (k + 3)
            i = 2 * k + 1
            x = self.convs[2 * k](x, w_plus[:, i], noise[i])
            x = self.convs[2 * k + 1](x, w_plus[:, i + 1], noise[i + 1])
            inject = f is not None and res == f_res
            if inject and f_before_rgb:
                x = x + f_blend * (f - x)
            if feature_hook is not None:
                x = feature_hook(res, x)
            img = to_rgb(x, w_plus[:, i + 2], img)
            if inject and not f_before_rgb:
                x = x + f_blend * (f - x)
            features[res] = x
        return (img, features) if return_features else img

    def forward(
        self, z: torch.Tensor, truncation: float = 1.0, noise_mode: str = "const", **kwargs
    ) -> torch.Tensor:
        """Sample images from z [N, style_dim]."""
        return self.synthesis(self.mapping(z, truncation), noise_mode=noise_mode, **kwargs)

    def style_mix(self, w1: torch.Tensor, w2: torch.Tensor, cutoff: int) -> torch.Tensor:
        """w+ taking layers [0, cutoff) from w1 and [cutoff, n_latent) from w2 (coarse w1, fine w2)."""
        if not 0 <= cutoff <= self.n_latent:
            raise ValueError(f"cutoff must be in [0, {self.n_latent}], got {cutoff}")
        a, b = self.broadcast(w1), self.broadcast(w2)
        return torch.cat([a[:, :cutoff], b[:, cutoff:]], dim=1)

    def random_mixing_w_plus(
        self, z: torch.Tensor, prob: float = 0.9, rng: random.Random | None = None
    ) -> torch.Tensor:
        """Training-time style mixing: with probability ``prob`` split two mapped codes at a random layer."""
        rng = rng or random
        w = self.mapping(z)
        if rng.random() >= prob:
            return self.broadcast(w)
        w2 = self.mapping(torch.randn_like(z))
        return self.style_mix(w, w2, rng.randint(1, self.n_latent - 1))


# ---------------------------------------------------------------------------------------------------------
# Discriminator


class ResBlock(nn.Module):
    """Residual down-sampling block: (conv2(conv1(x)) + skip(x)) / sqrt(2)."""

    def __init__(self, in_ch: int, out_ch: int, blur_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(
            in_ch, out_ch, 1, downsample=True, blur_kernel=blur_kernel, activate=False, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append the std of features over groups of samples as one extra channel (Sec. 3 of PG-GAN)."""
    n, c, h, w = x.shape
    g = min(n, group_size)
    if n % g:
        raise ValueError(f"minibatch stddev: batch {n} must be divisible by the group size {g}")
    y = x.view(g, -1, 1, c, h, w)
    y = torch.sqrt(y.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)  # [N/g, 1, 1, 1]
    return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator with minibatch stddev (Fig. 7c of Karras et al. 2020)."""

    def __init__(
        self,
        size: int,
        channel_multiplier: float = 2,
        channel_max: int = 512,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        stddev_group: int = 4,
    ) -> None:
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ValueError(f"Discriminator size must be a power of two >= 8, got {size}")
        self.size, self.channel_multiplier, self.channel_max = size, channel_multiplier, channel_max
        self.blur_kernel, self.stddev_group = tuple(blur_kernel), stddev_group
        ch = channel_table(size, channel_multiplier, channel_max)
        convs: list[nn.Module] = [ConvLayer(3, ch[size], 1)]
        res = size
        while res > 4:
            convs.append(ResBlock(ch[res], ch[res // 2], blur_kernel))
            res //= 2
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(ch[4] + 1, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 16, ch[4], activation=True), EqualLinear(ch[4], 1)
        )

    @property
    def config(self) -> dict:
        return dict(
            size=self.size,
            channel_multiplier=self.channel_multiplier,
            channel_max=self.channel_max,
            blur_kernel=list(self.blur_kernel),
            stddev_group=self.stddev_group,
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 3, size, size] -> logits [N, 1]."""
        check_shape(images, [None, 3, self.size, self.size], "images")
        x = minibatch_stddev(self.convs(images), self.stddev_group)
        x = self.final_conv(x)
        return self.final_linear(x.flatten(1))
