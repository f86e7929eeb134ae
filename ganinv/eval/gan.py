"""How good is a generator of the embedded world? FID-SFN against SynthFaces, put on a scale by the FID-SFN
of slightly blurred SynthFaces, and the frequency of every binary attribute in generated vs real faces."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from ..common import EVAL_SEED
from ..data.synthfaces import BINARY_ATTRIBUTES, edit_factors, real_images, render, sample_factors
from ..fid import SFNExtractor, compute_features, fid
from ..models.stylegan2 import Generator


def gaussian_blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur with standard deviation ``sigma`` pixels (reflect padding)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    x = F.pad(images, [radius] * 4, mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@torch.no_grad()
def generate(G: Generator, n: int, seed: int, batch_size: int = 250, truncation: float = 1.0) -> torch.Tensor:
    """n images [n, 3, size, size] on the CPU from fixed z (noise_mode 'random', seeded)."""
    dev = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), G.style_dim, generator=gen).to(dev)
        out.append(G(z, truncation=truncation, noise_mode="random").clamp(-1, 1).cpu())
    return torch.cat(out)


@torch.no_grad()
def attribute_probabilities(sfn, images: torch.Tensor, batch_size: int = 250) -> dict[str, torch.Tensor]:
    """The SFN's P(attribute = 1) of every binary attribute, each ``[N]`` (float64, on the CPU)."""
    probs: dict[str, list[torch.Tensor]] = {a: [] for a in BINARY_ATTRIBUTES}
    for batch in images.split(batch_size):
        attrs = sfn.attributes(batch)
        for a in BINARY_ATTRIBUTES:
            probs[a].append(attrs[a].double().cpu().flatten())
    return {a: torch.cat(p) for a, p in probs.items()}


def binary_statistics(sfn, images: torch.Tensor, batch_size: int = 250) -> dict[str, dict[str, float]]:
    """Per binary attribute, shares of ``images`` by the SFN's P(attribute = 1): ``frequency`` (P > 0.5),
    ``confident_on`` (P > 0.95) and ``undecided`` (0.05 <= P <= 0.95). A generator that dropped a mode has a
    low ``confident_on``; one that draws blurred, in-between features has a high ``undecided``."""
    return read_out_shares(attribute_probabilities(sfn, images, batch_size))


def read_out_shares(probs: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """:func:`binary_statistics` of probabilities already read out by :func:`attribute_probabilities`."""
    return {
        a: {
            "frequency": (p > 0.5).double().mean().item(),
            "confident_on": (p > 0.95).double().mean().item(),
            "undecided": ((p >= 0.05) & (p <= 0.95)).double().mean().item(),
        }
        for a, p in probs.items()
    }


def joint_statistics(
    probs: dict[str, torch.Tensor], pairs: list[tuple[str, str]]
) -> dict[str, dict[str, float]]:
    """For each attribute pair ``(a, b)``, the shares of the four read-out combinations (P > 0.5 is on):
    ``{"a+b": {"00": ..., "01": ..., "10": ..., "11": ...}}``, first digit ``a``. Attribute frequencies can
    match while their combinations do not (e.g. the mouth: neutral / smile / open 'O' / open grin)."""
    out = {}
    for a, b in pairs:
        on_a, on_b = probs[a] > 0.5, probs[b] > 0.5
        out[f"{a}+{b}"] = {
            f"{i}{j}": ((on_a == bool(i)) & (on_b == bool(j))).double().mean().item()
            for i in (0, 1)
            for j in (0, 1)
        }
    return out


def check_given(given: dict[str, int]) -> dict[str, int]:
    """``given`` of :func:`discriminator_preference` (binary attribute -> 0 or 1), or a ValueError naming the
    bad entry."""
    for a, v in given.items():
        if a not in BINARY_ATTRIBUTES or v not in (0, 1):
            raise ValueError(
                f"discriminator_preference: given must map binary attributes "
                f"({', '.join(BINARY_ATTRIBUTES)}) to 0 or 1, got {a}={v!r}"
            )
    return dict(given)


@torch.no_grad()
def discriminator_preference(
    D: torch.nn.Module,
    size: int,
    n: int = 1000,
    seed: int = EVAL_SEED,
    batch_size: int = 200,
    given: dict[str, int] | None = None,
) -> dict[str, dict[str, float]]:
    """Per binary attribute, D's logit on ``n`` SynthFaces drawn with the attribute minus the same faces drawn
    without it (``edit_factors``; nothing else changes): ``{"mean": ..., "std": ...}`` over the faces.

    Against a generator that under-produces an attribute, a large positive mean says D has learned that real
    faces have it (the mode is missing, not invisible to D); near 0, D does not tell the two apart. Each D
    batch holds half the faces with and half without the attribute, so that every minibatch-stddev group
    mixes both, as the real batches of training do.

    ``given``: binary attributes held fixed on every face, e.g. ``{"glasses": 1}`` asks whether D wants
    closed eyes *behind glasses*, a combination a generator can drop while drawing each attribute alone;
    the attributes in ``given`` are left out of the result.
    """
    given = check_given(given or {})
    group = getattr(D, "stddev_group", 1)
    if batch_size % (2 * group) or n % batch_size:
        raise ValueError(
            f"discriminator_preference: n ({n}) must be a multiple of batch_size ({batch_size}), itself a "
            f"multiple of twice D's minibatch-stddev group ({group})"
        )
    dev = next(D.parameters()).device
    factors = sample_factors(seed, range(n))
    if given:
        factors = edit_factors(factors, **given)
    half = batch_size // 2
    diffs: dict[str, list[torch.Tensor]] = {a: [] for a in BINARY_ATTRIBUTES if a not in given}
    for a in diffs:
        on, off = (torch.from_numpy(render(edit_factors(factors, **{a: v}), size)[0]) for v in (1, 0))
        for i in range(0, n, batch_size):
            first, second = slice(i, i + half), slice(i + half, i + batch_size)
            d1 = D(torch.cat([on[first], off[second]]).to(dev)).flatten().float().cpu()  # [batch_size]
            d2 = D(torch.cat([off[first], on[second]]).to(dev)).flatten().float().cpu()
            diffs[a].append(torch.cat([d1[:half] - d2[:half], d2[half:] - d1[half:]]))
    return {
        a: {"mean": round(torch.cat(d).mean().item(), 4), "std": round(torch.cat(d).std().item(), 4)}
        for a, d in diffs.items()
    }


def evaluate_gan(
    G: Generator, sfn, n: int = 5000, seed: int = 0, truncation: float = 1.0, progress: bool | None = None
) -> dict:
    """FID-SFN (n generated vs n SynthFaces), the blurred-data FID-SFN for scale, attribute frequencies.
    ``progress``: feature-extraction bars (None: only for long runs)."""
    dev = next(G.parameters()).device
    reference = real_images(G.size, n)  # set A
    other = real_images(G.size, n, offset=n)  # set B: same distribution, different faces
    fake = generate(G, n, seed, truncation=truncation)
    extractor = SFNExtractor(sfn)

    def feats(x):
        return compute_features(x, extractor, batch_size=250, device=dev, progress=progress)

    f_ref = feats(reference)
    result = {
        "n": n,
        "fid_sfn": fid(feats(fake), f_ref),
        "fid_sfn_blurred_data": fid(feats(gaussian_blur(other, 1.0)), f_ref),
        "fid_sfn_data_vs_data": fid(feats(other), f_ref),
    }
    fake_probs, real_probs = attribute_probabilities(sfn, fake), attribute_probabilities(sfn, reference)
    fake_stats, real_stats = read_out_shares(fake_probs), read_out_shares(real_probs)
    result["attribute_frequency"] = {
        a: {
            "generated": round(fake_stats[a]["frequency"], 4),
            "data": round(real_stats[a]["frequency"], 4),
            "difference_points": round(100 * (fake_stats[a]["frequency"] - real_stats[a]["frequency"]), 2),
            **{
                f"{who}_{k}": round(s[a][k], 4)
                for who, s in (("generated", fake_stats), ("data", real_stats))
                for k in ("confident_on", "undecided")
            },
        }
        for a in BINARY_ATTRIBUTES
    }
    pairs = list(itertools.combinations(BINARY_ATTRIBUTES, 2))
    fake_joint, real_joint = joint_statistics(fake_probs, pairs), joint_statistics(real_probs, pairs)
    result["attribute_pairs"] = {
        pair: {
            "generated": {c: round(v, 4) for c, v in fake_joint[pair].items()},
            "data": {c: round(v, 4) for c, v in real_joint[pair].items()},
            "largest_gap_points": round(
                100 * max(abs(fake_joint[pair][c] - real_joint[pair][c]) for c in cells), 2
            ),
        }
        for pair, cells in fake_joint.items()
    }
    worst = max(abs(v["difference_points"]) for v in result["attribute_frequency"].values())
    result["max_attribute_difference_points"] = worst
    result["passes"] = bool(result["fid_sfn"] < result["fid_sfn_blurred_data"] and worst <= 5.0)
    return result


def training_curves(runs: dict[str, list[dict]]):
    """A figure of :func:`evaluate_gan` results along training: FID-SFN (with the blurred-data bar) and the
    largest attribute-frequency gap against images seen, one line per run. ``runs``: ``{label: [result,
    ...]}``, each result with ``images_seen`` (``ganinv eval gan`` records it for trainer-written files)."""
    import matplotlib.pyplot as plt

    rows = math.ceil((len(runs) + 2) / 2)  # one legend under both panels, two entries per row
    fig, (ax_fid, ax_gap) = plt.subplots(1, 2, figsize=(10, 3.4 + 0.18 * rows))
    bar = None
    colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20").colors  # distinct colours past ten runs
    for i, (label, results) in enumerate(runs.items()):
        missing = [r.get("checkpoint", "?") for r in results if "images_seen" not in r]
        if missing:
            raise ValueError(f"run {label!r}: results without images_seen: {missing}")
        results = sorted(results, key=lambda r: r["images_seen"])
        kimg = [r["images_seen"] / 1000 for r in results]
        style = {"color": colours[i % len(colours)], "label": label}
        ax_fid.plot(kimg, [r["fid_sfn"] for r in results], "o-", **style)
        ax_gap.plot(kimg, [r["max_attribute_difference_points"] for r in results], "o-", **style)
        bar = results[-1]["fid_sfn_blurred_data"]
    if bar is not None:
        ax_fid.axhline(bar, color="k", ls="--", lw=1, label="bar: blurred SynthFaces")
    ax_gap.axhline(5.0, color="k", ls="--", lw=1, label="bar: 5 points")
    ax_fid.set(xlabel="thousands of images seen", ylabel="FID-SFN", title="FID-SFN (lower is better)")
    ax_gap.set(xlabel="thousands of images seen", ylabel="points", title="largest attribute-frequency gap")
    for ax in (ax_fid, ax_gap):
        ax.set_ylim(bottom=0)
    handles, labels = ax_fid.get_legend_handles_labels()
    gap_handles, gap_labels = ax_gap.get_legend_handles_labels()
    fig.legend(handles + gap_handles[-1:], labels + gap_labels[-1:], loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, (0.1 + 0.18 * rows) / fig.get_figheight(), 1, 1))
    return fig
