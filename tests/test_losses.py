"""Reconstruction losses: zero for identical images, weighted total, masks (1 = keep), the identity term's use
of the network's embedding, LPIPS selection, and CLCAE's F regulariser."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganinv.losses import LossWeights, ReconstructionLoss, feature_regulariser
from ganinv.metrics import MissingWeightsError, lpips_features
from ganinv.models.sfn import SFN, SFNConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sfn():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SFN(SFNConfig(size=32, widths=(8, 16), pool=2, hidden=16, embed_dim=8))


def pair(n=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1
    return x, (x + 0.3 * torch.randn(n, 3, 32, 32, generator=gen)).clamp(-1, 1)


def box_mask(n=3):
    mask = torch.zeros(n, 1, 32, 32)
    mask[:, :, 4:20, 6:26] = 1
    return mask


class MeanColour(nn.Module):
    """A fake identity network: the embedding is the mean colour, so it ignores where pixels are."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def embed(self, x):
        self.calls += 1
        return x.mean(dim=(2, 3)) + 2.0  # offset so that the cosine is not trivially 1


def test_weights_defaults_and_validation():
    w = LossWeights()
    assert (w.mse, w.lpips, w.id, w.feature_reg, w.align) == (
        1.0,
        0.2,
        0.1,
        0.01,
        0.1,
    )  # docs/papers/clcae.md §3
    with pytest.raises(ValueError, match="LossWeights.id must be >= 0"):
        LossWeights(id=-1)
    with pytest.raises(ValueError, match="lpips weight > 0 needs feature_net"):
        ReconstructionLoss()
    with pytest.raises(ValueError, match="id weight > 0 needs"):
        ReconstructionLoss(LossWeights(lpips=0))
    only_mse = ReconstructionLoss(LossWeights(lpips=0, id=0))
    x, y = pair()
    terms = only_mse(x, y)
    assert terms["lpips"] == 0 and terms["id"] == 0 and terms["total"] == terms["mse"] > 0


def test_zero_for_identical_images_positive_otherwise(sfn):
    loss = ReconstructionLoss(feature_net=sfn)
    assert loss.names == {"mse": "mse", "lpips": "lpips_sfn", "id": "id_sfn"}
    x, y = pair()
    same = loss(x, x.clone())
    assert same["mse"] == 0 and same["lpips"] == 0
    assert same["id"].abs() < 1e-6 and same["total"].abs() < 1e-6  # 1 - cos: rounding only
    diff = loss(x, y)
    assert all(diff[k] > 0 for k in ("mse", "lpips", "id", "total"))
    torch.testing.assert_close(diff["mse"], (x - y).pow(2).mean())
    torch.testing.assert_close(diff["lpips"], lpips_features(x, y, sfn).mean())
    sims = F.cosine_similarity(sfn.embed(x), sfn.embed(y))
    torch.testing.assert_close(diff["id"], (1 - sims).mean())
    torch.testing.assert_close(diff["total"], diff["mse"] + 0.2 * diff["lpips"] + 0.1 * diff["id"])


def test_gradients_reach_the_images_not_the_networks(sfn):
    loss = ReconstructionLoss(feature_net=sfn)
    assert not sfn.training and not any(p.requires_grad for p in sfn.parameters())
    x, y = pair()
    x = x.requires_grad_()
    loss(x, y)["total"].backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is None for p in sfn.parameters())


def test_mask_restricts_every_term_to_kept_pixels(sfn):
    loss = ReconstructionLoss(feature_net=sfn)
    x, y = pair()
    mask = box_mask()
    base = loss(x, y, mask)
    # anything outside the mask, in either image, changes nothing
    noise = torch.randn_like(x) * (1 - mask)
    moved = loss(x + noise, y - 2 * noise, mask)
    for key in base:
        torch.testing.assert_close(moved[key], base[key], rtol=0, atol=0)
    # inside it does
    inside = loss(x + 0.5 * mask, y, mask)
    assert all(inside[k] != base[k] for k in ("mse", "lpips", "id"))
    # MSE is the mean over kept pixels; the perceptual term is area-normalised
    kept = mask.bool().expand_as(x)
    torch.testing.assert_close(base["mse"], (x - y)[kept].pow(2).mean())
    area = mask.mean()
    torch.testing.assert_close(base["lpips"], (lpips_features(x * mask, y * mask, sfn) / area).mean())
    # a full mask, or a batch-shared one, is the same as no / a per-image mask
    full = loss(x, y, torch.ones(1, 1, 32, 32))
    for key, value in loss(x, y).items():
        torch.testing.assert_close(full[key], value)
    shared = loss(x, y, mask[:1])
    for key in base:
        torch.testing.assert_close(shared[key], base[key])


def test_mask_validation(sfn):
    loss = ReconstructionLoss(feature_net=sfn)
    x, y = pair()
    with pytest.raises(ValueError, match=r"mask: expected shape \[3, 1, 32, 32\]"):
        loss(x, y, torch.ones(3, 3, 32, 32))
    with pytest.raises(ValueError, match="no pixel to include"):
        loss(x, y, torch.zeros(3, 1, 32, 32))
    with pytest.raises(ValueError, match=r"values must lie in \[0, 1\]"):
        loss(x, y, 2 * torch.ones(3, 1, 32, 32))
    with pytest.raises(ValueError, match="same shape"):
        loss(x, y[:, :, :16])


def test_identity_term_uses_the_networks_embedding(sfn):
    net = MeanColour()
    loss = ReconstructionLoss(LossWeights(mse=0, lpips=0), id_net=net)
    assert loss.names["id"] == "id_meancolour"
    x, y = pair()
    by_hand = 1 - F.cosine_similarity(x.mean(dim=(2, 3)) + 2, y.mean(dim=(2, 3)) + 2)
    calls = net.calls
    terms = loss(x, y)
    assert net.calls == calls + 2
    torch.testing.assert_close(terms["id"], by_hand.mean())
    # shuffling pixels keeps the mean colour: the identity term is blind to it, MSE is not
    shuffled = x.flatten(2)[:, :, torch.randperm(32 * 32)].view_as(x)
    assert loss(shuffled, x)["id"].abs() < 1e-6
    assert ReconstructionLoss(LossWeights(lpips=0, id=0))(shuffled, x)["mse"] > 0.1
    # with an SFN for the perceptual term, id_net still takes the identity role
    mixed = ReconstructionLoss(feature_net=sfn, id_net=net)
    torch.testing.assert_close(mixed(x, y)["id"], by_hand.mean())


def test_features_and_embed_is_one_pass_with_the_same_values(sfn):
    x, _ = pair()
    passes = []
    hook = sfn.stages[0].register_forward_hook(lambda *_: passes.append(1))
    try:
        feats, emb = sfn.features_and_embed(x)
        assert len(passes) == 1
    finally:
        hook.remove()
    for a, b in zip(feats, sfn.features(x), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(emb, sfn.embed(x), rtol=0, atol=0)


@pytest.mark.parametrize("masked", [False, True])
def test_prepared_target_gives_the_same_losses_with_one_pass(sfn, masked):
    loss = ReconstructionLoss(feature_net=sfn)
    x, y = pair()
    mask = box_mask() if masked else None
    passes = []
    hook = sfn.stages[0].register_forward_hook(lambda *_: passes.append(1))
    try:
        target = loss.prepare(y, mask)
        assert len(passes) == 1  # LPIPS-SFN features and ID embedding of the target from one SFN pass
        recons = [x, x.flip(3), (x + y) / 2]
        prepared = [loss(r.clone().requires_grad_(), target) for r in recons]
        assert len(passes) == 1 + len(recons)  # then one pass per reconstruction
    finally:
        hook.remove()
    for r, terms in zip(recons, prepared):
        plain = loss(r, y, mask)
        for key in plain:
            torch.testing.assert_close(terms[key], plain[key], rtol=0, atol=0)
    # gradients reach the reconstruction as without preparing (up to summation order in the shared pass)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    loss(a, target)["total"].backward()
    loss(b, y, mask)["total"].backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_prepared_target_checks(sfn):
    loss = ReconstructionLoss(feature_net=sfn)
    x, y = pair()
    target = loss.prepare(y, box_mask())
    with pytest.raises(ValueError, match="give the mask to prepare"):
        loss(x, target, box_mask())
    with pytest.raises(ValueError, match="prepared by another ReconstructionLoss"):
        ReconstructionLoss(feature_net=sfn)(x, target)
    with pytest.raises(ValueError, match="same shape"):
        loss(x[:, :, :16], target)
    with pytest.raises(ValueError, match=r"mask: expected shape \[3, 1, 32, 32\]"):
        loss.prepare(y, torch.ones(3, 3, 32, 32))
    # only the weighted terms' networks run on the target; a real LPIPS model still sees it at every call
    only_id = ReconstructionLoss(LossWeights(lpips=0), id_net=MeanColour())
    plain = only_id(x, y)
    prepared = only_id.prepare(y)
    assert prepared.features is None and prepared.embedding is not None
    torch.testing.assert_close(only_id(x, prepared)["total"], plain["total"], rtol=0, atol=0)


def test_lpips_model_replaces_lpips_sfn(sfn, tmp_path, monkeypatch):
    class FakeLPIPS(nn.Module):
        key = "lpips_fake"

        def forward(self, a, b):
            return (a - b).abs().mean(dim=(1, 2, 3))

    loss = ReconstructionLoss(feature_net=sfn, lpips=FakeLPIPS())
    assert loss.names["lpips"] == "lpips_fake"
    x, y = pair()
    torch.testing.assert_close(loss(x, y)["lpips"], (x - y).abs().mean())
    torch.testing.assert_close(loss(x, loss.prepare(y))["lpips"], (x - y).abs().mean())
    # a named LPIPS needs its local weights; nothing is downloaded
    monkeypatch.setenv("GANINV_LPIPS_TRUNK", str(tmp_path / "nowhere"))
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        ReconstructionLoss(feature_net=sfn, lpips="alex")


def test_feature_regulariser():
    f, f_own = torch.randn(2, 16, 8, 8, requires_grad=True), torch.randn(2, 16, 8, 8, requires_grad=True)
    assert feature_regulariser(f_own, f_own.clone()) == 0
    reg = feature_regulariser(f, f_own)
    torch.testing.assert_close(reg, (f - f_own).pow(2).mean())
    reg.backward()
    assert f.grad.abs().sum() > 0 and f_own.grad is None  # the target is detached (stop-gradient)
    with pytest.raises(ValueError, match="differ in shape"):
        feature_regulariser(f, f_own[:, :8])
