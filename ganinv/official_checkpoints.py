"""Loading the official pSp, e4e and CLCAE checkpoints (the files their authors released).

All three are ``torch.save`` dicts ``{"state_dict": {"encoder.*", "decoder.*"}, "opts": ..., ...}``:

=======  =============================================  ==================================================
kind     released file / writer                         what the file holds besides the weights
=======  =============================================  ==================================================
psp      ``psp_ffhq_encode.pt`` (eladrich/              ``opts`` (a dict of the training options,
         pixel2style2pixel, ``training/coach.py``)      ``encoder_type="GradualStyleEncoder"``,
                                                        ``output_size``), ``latent_avg`` [18, 512]
e4e      ``e4e_ffhq_encode.pt`` (omertov/               ``opts`` (``encoder_type="Encoder4Editing"``,
         encoder4editing, ``training/coach.py``)        ``stylegan_size``), ``latent_avg`` [18, 512]
clcae    the FFHQ inversion model (KumapowerLIU/CLCAE,  ``opts`` (``output_size``, ablation flags), ``iter``;
         ``training/inversion_coach.py``)               **no** latent_avg: the release reads it from the
                                                        StyleGAN file (``opts.stylegan_weights``)
=======  =============================================  ==================================================

:func:`load_encoder` reads such a file safely (``check_torch_file``, then ``torch.load(weights_only=True)``
with ``argparse.Namespace`` allowed, as every ganinv loader), recognises the kind from the keys
(``styles_others`` only exists in CLCAE; pSp and e4e have identical keys and are told apart by
``opts.encoder_type``), infers the configuration from the tensor shapes (number of styles = number of
heads, = 2 log2(size) - 2 of the ``decoder.*`` generator and of the size in ``opts``; widths; input
channels), builds :class:`~ganinv.models.official.OfficialEncoder` and loads the ``encoder.*`` weights
strictly. The generator of the same file loads with :func:`ganinv.checkpoints.load_generator`
(``decoder.*``); :func:`load_official` returns both, with the averages set. Every failure is a
:class:`~ganinv.errors.CheckpointError` naming the file and what was found.

This module imports :mod:`ganinv.checkpoints`, never the other way round.
"""

from __future__ import annotations

import argparse
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .checkpoint_guard import ZIP_MAGIC, build_checked
from .checkpoints import (
    _build,
    _infer,
    _short,
    _torch_load,
    infer_generator_config,
    load_state_strict,
    resolve_checkpoint,
)
from .errors import CheckpointError
from .models.official import KINDS, OfficialConfig, OfficialEncoder, n_styles_for
from .models.official_backbone import IRSE50_UNITS
from .models.stylegan2 import Generator

ENCODER_TYPES = {"GradualStyleEncoder": "psp", "Encoder4Editing": "e4e"}
UNSUPPORTED_TYPES = (
    "BackboneEncoderUsingLastLayerIntoW",
    "BackboneEncoderUsingLastLayerIntoWPlus",
    "SingleStyleCodeEncoder",
)
SIZE_OPTION = {"psp": "output_size", "e4e": "stylegan_size", "clcae": "output_size"}
_MARKER = b"encoder.input_layer.0.weight"  # the first key of every released encoder
_SNIFF_LIMIT = 64 * 2**20


def is_official_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a released pSp / e4e / CLCAE file, without loading it: its pickle (the
    zip's ``data.pkl``, or the head of a legacy file, where the pickle precedes the tensor data) names the
    key ``encoder.input_layer.0.weight``, which no ganinv-format file has. :func:`load_encoder` decides."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with open(p, "rb") as f:
            head = f.read(4)
            if head != ZIP_MAGIC:
                return _MARKER in head + f.read(_SNIFF_LIMIT)
        with zipfile.ZipFile(p) as z:
            pickles = [i for i in z.infolist() if i.filename.endswith("data.pkl")]
            if len(pickles) != 1 or pickles[0].file_size > _SNIFF_LIMIT:
                return False
            return _MARKER in z.read(pickles[0])
    except (OSError, zipfile.BadZipFile):
        return False


def _opts_dict(opts: Any, path: Path) -> dict:
    if opts is None:
        return {}
    if isinstance(opts, argparse.Namespace):
        return dict(vars(opts))
    if isinstance(opts, Mapping):
        return dict(opts)
    raise CheckpointError(f"{path}: 'opts' is a {type(opts).__name__}, expected a dict or argparse.Namespace")


def _prefixes(keys) -> str:
    """'encoder (312), decoder (150), ...': the first dotted component of ``keys`` with counts."""
    counts: dict[str, int] = {}
    for k in keys:
        head = str(k).split(".")[0]
        counts[head] = counts.get(head, 0) + 1
    return ", ".join(f"{k} ({n})" for k, n in sorted(counts.items())) or "nothing"


def _indices(keys, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.fullmatch(k))})


def _shape(sd: Mapping[str, Any], key: str, path: Path, kind: str) -> tuple[int, ...]:
    t = sd.get(key)
    if not isinstance(t, torch.Tensor):
        raise CheckpointError(
            f"{path}: looks like a {kind} checkpoint but encoder.{key} is missing or not a tensor; the file "
            "is incomplete or of another layout"
        )
    return tuple(t.shape)


def recognise(
    state_dict: Mapping[str, Any], opts: Mapping[str, Any], path: Path, kind: str | None = None
) -> str:
    """ "psp", "e4e" or "clcae" from the keys (and ``opts["encoder_type"]``); ``kind`` settles pSp vs e4e
    when the file has no ``opts``. CheckpointError for anything else, naming what was found."""
    keys = [str(k) for k in state_dict]
    enc = {k[len("encoder.") :] for k in keys if k.startswith("encoder.")}
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    if "logit_scale" in keys or any(k.startswith(("image_projection.", "latent_projection.")) for k in keys):
        raise CheckpointError(
            f"{path}: a CLCAE stage-1 (contrastive) checkpoint ({_prefixes(keys)}), not an inversion "
            "encoder; load the stage-2 inversion model (the FFHQ_Inversion file) instead"
        )
    if "input_layer.0.weight" not in enc:
        raise CheckpointError(
            f"{path}: not a pSp / e4e / CLCAE checkpoint: no encoder.input_layer.0.weight (state_dict holds "
            f"{_prefixes(keys)}; first keys: {_short(sorted(keys), 4)})"
        )
    encoder_type = opts.get("encoder_type")
    if "styles_others.0.linear.weight" in enc:
        found = "clcae"
    elif "styles.0.linear.weight" in enc:
        if encoder_type in ENCODER_TYPES:
            found = ENCODER_TYPES[encoder_type]
        elif encoder_type is None and kind in ("psp", "e4e"):
            found = kind
        elif encoder_type is None:
            raise CheckpointError(
                f"{path}: pSp and e4e checkpoints have the same keys and this one has no opts.encoder_type; "
                "pass kind='psp' or kind='e4e'"
            )
        else:
            raise CheckpointError(f"{path}: opts.encoder_type {encoder_type!r} is not pSp's or e4e's encoder")
    elif encoder_type in UNSUPPORTED_TYPES or "linear.weight" in enc:
        raise CheckpointError(
            f"{path}: pSp's {encoder_type or 'BackboneEncoderUsingLastLayerIntoW(Plus)'} (one linear head on "
            "the last feature map) is not supported; ganinv reads GradualStyleEncoder (pSp), Encoder4Editing "
            "(e4e) and CLCAE files"
        )
    else:
        raise CheckpointError(
            f"{path}: unknown encoder layout: an IR-SE50 trunk without map2style heads (encoder.* keys: "
            f"{_prefixes(sorted(enc))})"
        )
    if kind is not None and kind != found:
        raise CheckpointError(f"{path}: holds a released {found} encoder, not {kind}")
    return found


def infer_config(
    state_dict: Mapping[str, Any], opts: Mapping[str, Any], path: Path, kind: str
) -> OfficialConfig:
    """The :class:`OfficialConfig` of a released file from its shapes, checked against ``opts`` and the
    ``decoder.*`` generator."""
    enc = {k[len("encoder.") :]: v for k, v in state_dict.items() if str(k).startswith("encoder.")}
    units = _indices(enc, r"body\.(\d+)\.res_layer\.1\.weight")
    if units != list(range(sum(IRSE50_UNITS))):
        raise CheckpointError(
            f"{path}: the encoder trunk has {len(units)} residual units; the released IR-SE50 has "
            f"{sum(IRSE50_UNITS)} (other depths are not supported)"
        )
    starts = [sum(IRSE50_UNITS[:s]) for s in range(4)]  # first unit of each stage: 0, 3, 7, 21
    widths = tuple(_shape(enc, f"body.{i}.res_layer.1.weight", path, kind)[0] for i in starts)
    input_nc = _shape(enc, "input_layer.0.weight", path, kind)[1]
    style_dim = _shape(enc, "styles.0.linear.weight", path, kind)[0]
    if kind == "clcae":
        n_styles = 1 + len(_indices(enc, r"styles_others\.(\d+)\.linear\.weight"))
    else:
        n_styles = len(_indices(enc, r"styles\.(\d+)\.linear\.weight"))
    extra: dict[str, Any] = {}
    if kind == "clcae":
        if "car" in str(opts.get("dataset_type", "")):
            raise CheckpointError(
                f"{path}: a CLCAE cars model (dataset_type {opts['dataset_type']!r}: 192x256 input, padded "
                "T3, cropped output); only the square FFHQ setting is supported"
            )
        if opts.get("idx_k") not in (None, 5):
            raise CheckpointError(
                f"{path}: CLCAE with idx_k={opts['idx_k']}; only feature 5 (16x16) is supported"
            )
        attn = "feature_cross_attention.linear1.weight"
        ffn_keys = [k for k in ("cross_attention.0.linear1.weight", attn) if k in enc]
        extra = dict(
            w_attention="cross_attention.0.linear1.weight" in enc,
            f_branch="attention" if attn in enc else "cnn" if "content_layer.0.weight" in enc else None,
            no_res="decoder.model.0.weight" in enc,
            ffn_dim=_shape(enc, ffn_keys[0], path, kind)[0] if ffn_keys else 1024,
        )
    size_key = SIZE_OPTION[kind]
    if opts.get(size_key) is not None and n_styles_for(int(opts[size_key])) != n_styles:
        raise CheckpointError(
            f"{path}: {n_styles} style heads, but opts.{size_key} = {opts[size_key]} needs "
            f"{n_styles_for(int(opts[size_key]))}"
        )
    dec = {k[len("decoder.") :]: v for k, v in state_dict.items() if str(k).startswith("decoder.")}
    if dec:
        try:
            g_size = infer_generator_config(dec)["size"]
        except (CheckpointError, AttributeError, TypeError, IndexError, ValueError) as e:
            raise CheckpointError(
                f"{path}: the decoder.* weights are not a StyleGAN2 generator ({e})"
            ) from None
        if n_styles_for(g_size) != n_styles:
            raise CheckpointError(
                f"{path}: {n_styles} style heads, but the decoder is a {g_size}px generator with "
                f"{n_styles_for(g_size)} styles"
            )
    try:
        return OfficialConfig(kind, n_styles, style_dim, input_nc, widths, **extra)
    except ValueError as e:
        raise CheckpointError(f"{path}: unsupported {kind} layout: {e}") from None


def read_official(path: str | os.PathLike) -> tuple[Path, dict]:
    """(resolved path, the checkpoint dict) of a released file, loaded safely; CheckpointError otherwise."""
    p = resolve_checkpoint(path, "generator")
    ckpt = _torch_load(p)
    if isinstance(ckpt, dict) and ckpt.get("format") == "ganinv":
        raise CheckpointError(
            f"{p}: a ganinv-format {ckpt.get('kind')!r} checkpoint, not a released pSp / e4e / CLCAE file; "
            "pass it to invert() as it is (or load it with its own loader)"
        )
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        found = _short(sorted(map(str, ckpt))) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{p}: not a pSp / e4e / CLCAE checkpoint: expected a dict with a 'state_dict' (found {found})"
        )
    return p, ckpt


def _start_from_latent_avg(opts: Mapping[str, Any], ckpt: Mapping[str, Any], kind: str) -> bool:
    if kind == "clcae":
        return True  # AFPSP always adds latent_avg
    flag = opts.get("start_from_latent_avg")
    return bool(flag) if flag is not None else "latent_avg" in ckpt


def _latent_avg_from(value: Any, path: Path) -> Any:
    """A tensor, or a StyleGAN / pSp file whose ``latent_avg`` to use (e.g. stylegan2-ffhq-config-f.pt)."""
    if isinstance(value, torch.Tensor):
        return value
    source = resolve_checkpoint(value, "generator")
    held = _torch_load(source)
    if not isinstance(held, dict) or not isinstance(held.get("latent_avg"), torch.Tensor):
        raise CheckpointError(f"{path}: latent_avg={value!s}: {source} stores no latent_avg tensor")
    return held["latent_avg"]


def build_encoder(
    ckpt: Mapping[str, Any],
    path: Path,
    kind: str | None = None,
    latent_avg: Any = None,
    image_avg: Any = None,
) -> OfficialEncoder:
    """The :class:`OfficialEncoder` of an already loaded checkpoint dict (see :func:`load_encoder`)."""
    sd, opts = ckpt["state_dict"], _opts_dict(ckpt.get("opts"), path)
    found = recognise(sd, opts, path, kind)
    cfg = infer_config(sd, opts, path, found)
    enc_sd = {k[len("encoder.") :]: v for k, v in sd.items() if str(k).startswith("encoder.")}
    safe_opts = {k: v for k, v in opts.items() if isinstance(v, (str, int, float, bool, type(None)))}
    start = _start_from_latent_avg(opts, ckpt, found)
    model = build_checked(
        lambda: OfficialEncoder(cfg, safe_opts, start), enc_sd, path, f"{found} encoder", cfg.to_dict()
    )
    load_state_strict(model.net, enc_sd, path)
    avg = ckpt.get("latent_avg") if latent_avg is None else _latent_avg_from(latent_avg, path)
    if avg is not None:
        try:
            model.set_latent_avg(avg)
        except (ValueError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"{path}: latent_avg does not fit the encoder: {e}") from None
    if image_avg is not None:
        if model.image_avg is None:
            raise ValueError(f"image_avg is for CLCAE checkpoints; {path} holds a {found} encoder")
        if not isinstance(image_avg, torch.Tensor):
            from .data.images import load_image

            image_avg = load_image(image_avg)
        model.set_image_avg(image_avg)
    return model.eval()


def load_encoder(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    kind: str | None = None,
    latent_avg: Any = None,
    image_avg: Any = None,
) -> OfficialEncoder:
    """An official pSp / e4e / CLCAE checkpoint's encoder (eval mode) as an
    :class:`~ganinv.models.official.OfficialEncoder`, usable as ``invert(..., encoder=...)``.

    ``kind`` ("psp" / "e4e" / "clcae") is only needed for pSp / e4e files without ``opts.encoder_type`` (and
    is checked otherwise). ``latent_avg``: a tensor [512] / [n, 512] or the StyleGAN file the model was
    trained with, overriding the file's (CLCAE files store none; without it :meth:`set_averages` takes G's).
    ``image_avg`` (CLCAE): the average image x_avg, a tensor [3, S, S] in [-1, 1] or an image file (the
    release's ``avg_image``); without it, G(latent_avg) is used.
    """
    p, ckpt = read_official(path)
    return build_encoder(ckpt, p, kind, latent_avg, image_avg).to(device)


def load_official(path: str | os.PathLike, device: str | torch.device = "cpu", **kwargs):
    """(encoder, generator) of one official file, read once: the generator from its ``decoder.*`` weights
    (as :func:`~ganinv.checkpoints.load_generator` builds it, ``w_avg`` from the file's or the given
    latent_avg), the encoder's averages set from it. ``kwargs``: those of :func:`load_encoder`."""
    p, ckpt = read_official(path)
    encoder = build_encoder(ckpt, p, **kwargs).to(device)
    dec = {k[len("decoder.") :]: v for k, v in ckpt["state_dict"].items() if str(k).startswith("decoder.")}
    if not dec:
        raise CheckpointError(
            f"{p}: no decoder.* weights: the file holds no generator; load_encoder reads it"
        )
    G = _build(Generator, _infer(infer_generator_config, dec, p), dec, p).to(device).eval()
    if not torch.isnan(encoder.latent_avg).any():
        G.w_avg.copy_(encoder.latent_avg[0].to(G.w_avg.device))
    encoder.check_generator(G)
    encoder.set_averages(G)
    return encoder, G
