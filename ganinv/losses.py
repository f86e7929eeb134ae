"""Reconstruction losses shared by the encoder trainers (pSp, e4e, CLCAE, inpainting); CLCAE's F regulariser.

:class:`ReconstructionLoss` is the pSp-family objective the CLCAE release applies to each of its three outputs
(``docs/papers/clcae.md`` §3)::

    L_rec(x̂, x) = λ_2 MSE(x̂, x) + λ_LPIPS LPIPS(x̂, x) + λ_ID (1 - cos(E(x̂), E(x)))

with LPIPS-SFN (:func:`ganinv.metrics.lpips_features` on the SFN) or the real AlexNet / VGG LPIPS
(:class:`ganinv.metrics.LPIPS`, local weights only) as the perceptual term, and ID-SFN (``net.embed``) in
ArcFace's role. CLCAE's full stage-2 loss is, summed over I ∈ {G(w), G(w⁺), G(w⁺, f)},
``L_rec(I, x) + λ_freg ||f - sg(G⁵(w⁺))||² + λ_align L_align(G(w), w)``; the trainer assembles it from
:class:`ReconstructionLoss`, :func:`feature_regulariser` and :func:`ganinv.models.contrastive.alignment_loss`
with the weights of :class:`LossWeights`. (e4e's delta regulariser is
:meth:`ganinv.models.encoders.E4EEncoder.delta_regulariser`.)

**Masks** (1 = keep, e.g. the unerased pixels of an inpainting input; [N or 1, 1, H, W], values in [0, 1]):
MSE is the mask-weighted mean normalised by the mask area (:func:`ganinv.metrics.mse`). The network terms
see both images multiplied by the mask (dropped pixels become 0, mid-grey), so nothing outside the mask can
change the loss; the perceptual distance, a spatial mean, is then divided by the kept fraction of the image
(its area normalisation). Network features near the mask border still see kept pixels of both images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .metrics import (
    LPIPS,
    _check_images,
    _check_mask,
    _check_pair,
    _cosine_of_embeddings,
    _lpips_of_features,
    mse,
)

__all__ = ["LossWeights", "PreparedTarget", "ReconstructionLoss", "feature_regulariser"]


@dataclass
class LossWeights:
    """Loss weights; the defaults are the CLCAE release's README values (docs/papers/clcae.md §3), which equal
    Feature-Style's config exactly, so the same numbers also serve the pSp / e4e / inpainting trainers.

    ``mse`` 1.0 (``l2_lambda``), ``lpips`` 0.2 (``lpips_lambda`` in the README command; the code default 0.8
    is pSp's), ``id`` 0.1 (``id_lambda``): used by :class:`ReconstructionLoss`. ``feature_reg`` 0.01
    (``feature_matching_lambda``; the paper's transcribed λ_freg = 1 is likely a slip, FS uses 0.01) and
    ``align`` 0.1 (``contrastive_lambda``; the paper's value is unknown) are read by the CLCAE trainer.
    """

    mse: float = 1.0
    lpips: float = 0.2
    id: float = 0.1
    feature_reg: float = 0.01
    align: float = 0.1

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value >= 0:
                raise ValueError(f"LossWeights.{name} must be >= 0, got {value}")


class ReconstructionLoss:
    """``λ_2 MSE + λ_LPIPS perceptual + λ_ID (1 - ID cosine)`` between a reconstruction and its target.

    ``feature_net``: an SFN-like network (``features(x)`` list of maps, ``embed(x)`` [N, D]); it gives
    LPIPS-SFN unless ``lpips`` (a :class:`ganinv.metrics.LPIPS`, or ``"alex"`` / ``"vgg"`` to build one from
    local weights) is given, and ID-SFN unless ``id_net`` is given. Networks are put in eval mode with
    gradients off (their parameters never train; gradients still reach the images). A term with weight 0
    is skipped and reported as 0; a positive weight without a network is a ValueError.

    ``loss(x_hat, x, mask=None)`` returns ``{"mse", "lpips", "id"}`` (unweighted batch means, the last as
    ``1 - cos``) and ``"total"`` (weighted sum). ``self.names`` says which network each term used.

    **Several reconstructions of one target** (CLCAE's G(w), G(w⁺), G(w⁺, f); an optimisation loop):
    ``target = loss.prepare(x, mask)`` runs the networks on the target once and ``loss(x_hat, target)``
    reuses their outputs, with exactly the values of ``loss(x_hat, x, mask)``. When the SFN gives both the
    LPIPS-SFN features and the ID-SFN embedding, one pass (:meth:`ganinv.models.sfn.SFN.features_and_embed`)
    serves both, for the target and the reconstruction alike.
    """

    def __init__(
        self,
        weights: LossWeights | None = None,
        feature_net: nn.Module | None = None,
        lpips: LPIPS | str | None = None,
        id_net: nn.Module | None = None,
    ) -> None:
        self.weights = weights if weights is not None else LossWeights()
        if isinstance(lpips, str):
            lpips = LPIPS(lpips)
        self.lpips, self.feature_net = lpips, feature_net
        self.id_net = id_net if id_net is not None else feature_net
        for net in (self.lpips, self.feature_net, self.id_net):
            if net is not None:
                net.eval().requires_grad_(False)
        if self.weights.lpips > 0 and lpips is None and feature_net is None:
            raise ValueError("ReconstructionLoss: lpips weight > 0 needs feature_net (SFN) or an LPIPS model")
        if self.weights.id > 0 and self.id_net is None:
            raise ValueError("ReconstructionLoss: id weight > 0 needs feature_net (SFN) or id_net")
        self.names = {
            "mse": "mse",
            "lpips": lpips.key if lpips is not None else "lpips_sfn",
            "id": "id_sfn" if id_net is None else f"id_{type(id_net).__name__.lower()}",
        }

    def prepare(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> PreparedTarget:
        """The target ``x`` [N, 3, H, W] (with its ``mask``, 1 = keep, or None) and the outputs of this loss's
        networks on it, for any number of ``loss(x_hat, target)`` calls. Only the real-LPIPS term
        (``lpips`` given) still runs on the target at every call. The outputs keep ``x``'s autograd graph
        when ``x`` requires grad (then backward once through the sum of the losses that use them)."""
        _check_images(x, "x")
        seen = x if mask is None else x * _check_mask(mask, x)
        features, embedding = self._outputs(seen)
        return PreparedTarget(self, x, mask, seen, features, embedding)

    def _outputs(self, images: torch.Tensor) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
        """(LPIPS-SFN features, ID embedding) of ``images``, None for a term that is off or has another
        network; one pass where the feature net gives both (``features_and_embed``)."""
        w = self.weights
        want_features, want_embedding = w.lpips > 0 and self.lpips is None, w.id > 0
        net = self.feature_net
        if want_features and want_embedding and self.id_net is net and hasattr(net, "features_and_embed"):
            return net.features_and_embed(images)
        features = net.features(images) if want_features else None
        return features, self.id_net.embed(images) if want_embedding else None

    def __call__(
        self, x_hat: torch.Tensor, x: torch.Tensor | PreparedTarget, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """x_hat, x [N, 3, H, W] in [-1, 1]; mask [N or 1, 1, H, W] (1 = keep) or None. ``x`` may be a
        :meth:`prepare`-d target, which carries its own mask."""
        target = x if isinstance(x, PreparedTarget) else None
        if target is not None:
            if target.loss is not self:
                raise ValueError("ReconstructionLoss: the target was prepared by another ReconstructionLoss")
            if mask is not None:
                raise ValueError("ReconstructionLoss: give the mask to prepare(), not with a prepared target")
            x, mask = target.x, target.mask
        _check_pair(x_hat, x)
        w = self.weights
        zero = x_hat.new_zeros(())
        terms = {"mse": mse(x_hat, x, mask).mean()}
        if mask is not None:
            mask = _check_mask(mask, x_hat)
            area = mask.expand(x_hat.shape[0], 1, *x_hat.shape[2:]).mean(
                dim=(1, 2, 3)
            )  # [N], > 0 (mse checked)
            x_hat = x_hat * mask
            x = target.seen if target is not None else x * mask
        if target is None:
            target = PreparedTarget(self, x, None, x, *self._outputs(x))
        features, embedding = self._outputs(x_hat)
        if w.lpips > 0:
            if self.lpips is not None:
                dist = self.lpips(x_hat, target.seen)
            else:
                dist = _lpips_of_features(features, target.features, x_hat)
            terms["lpips"] = (dist if mask is None else dist / area).mean()
        else:
            terms["lpips"] = zero
        terms["id"] = (1 - _cosine_of_embeddings(embedding, target.embedding)).mean() if w.id > 0 else zero
        terms["total"] = w.mse * terms["mse"] + w.lpips * terms["lpips"] + w.id * terms["id"]
        return terms


@dataclass(frozen=True, eq=False)
class PreparedTarget:
    """A :class:`ReconstructionLoss` target with its networks' outputs (from ``loss.prepare(x, mask)``)."""

    loss: ReconstructionLoss  # the loss whose networks made the outputs (only it accepts the target)
    x: torch.Tensor  # the target [N, 3, H, W] as given
    mask: torch.Tensor | None  # as given (1 = keep), or None
    seen: torch.Tensor  # what the networks saw: x, or x * mask
    features: list[torch.Tensor] | None  # LPIPS-SFN features of seen (None: term off or real LPIPS)
    embedding: torch.Tensor | None  # ID embedding of seen (None: term off)


def feature_regulariser(f: torch.Tensor, f_own: torch.Tensor) -> torch.Tensor:
    """CLCAE's F regulariser ``MSE(f, sg(G⁵(w⁺)))``: the mean squared difference between the predicted F
    feature and G's own feature at the same resolution for the predicted w⁺
    (:func:`ganinv.models.clcae.own_feature`), which is detached (docs/papers/clcae.md §3 and quirk 8: the
    release's ``feature_matching_lambda`` term)."""
    if f.shape != f_own.shape:
        raise ValueError(
            f"feature_regulariser: f {list(f.shape)} and f_own {list(f_own.shape)} differ in shape"
        )
    return (f - f_own.detach()).pow(2).mean()
