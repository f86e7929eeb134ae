"""Known answers for ganinv.metrics / ganinv.fid: pixel metrics, LPIPS loading, feature metrics, FID, IDS."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganinv import metrics
from ganinv.metrics import (
    LPIPS,
    InceptionExtractor,
    MissingWeightsError,
    SFNExtractor,
    compute_features,
    fid,
    frechet_distance,
    id_similarity,
    ids_scores,
    lpips_features,
    mse,
    pairwise_diversity,
    psnr,
    ssim,
    summarize,
)


def smooth_images(n=2, size=32, seed=0):
    """Low-frequency images in [-1, 1] (SSIM behaves as on natural images)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


class TinySFN(nn.Module):
    """A random stand-in with the SFN's protocol: multi-layer `features` and a pooled `embed`."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = nn.Linear(16, 5)

    def features(self, x):
        h1 = F.leaky_relu(self.c1(x), 0.2)
        return [h1, F.leaky_relu(self.c2(h1), 0.2)]

    def embed(self, x):
        return self.head(self.features(x)[-1].mean(dim=(2, 3)))


class Identity:
    """features(x) = [x], embed(x) = x: makes the recipes checkable by hand."""

    def features(self, x):
        return [x]

    def embed(self, x):
        return x.flatten(1)


# ------------------------------------------------------------------------------------ pixel metrics


def test_identical_inputs():
    x = smooth_images()
    net = TinySFN()
    assert torch.equal(mse(x, x), torch.zeros(2))
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    assert torch.equal(lpips_features(x, x, net), torch.zeros(2))
    assert torch.allclose(id_similarity(x, x, net), torch.ones(2), atol=1e-6)


def test_constant_shift_mse_and_psnr():
    x = smooth_images().double()
    y = x + 0.1
    assert torch.allclose(mse(x, y), torch.full((2,), 0.01, dtype=torch.float64))
    assert torch.allclose(psnr(x, y), torch.full((2,), 10 * math.log10(4 / 0.01), dtype=torch.float64))
    assert torch.allclose(psnr(x, y, data_range=1.0), torch.full((2,), 20.0, dtype=torch.float64))


def test_mask_restricts_mse_to_the_region():
    x = torch.zeros(2, 3, 8, 8)
    y = x.clone()
    y[:, :, :, 4:] = 0.5  # images differ on the right half only
    left = torch.zeros(2, 1, 8, 8)
    left[..., :4] = 1
    assert torch.equal(mse(x, y, left), torch.zeros(2))
    assert torch.allclose(mse(x, y, 1 - left), torch.full((2,), 0.25))
    assert torch.allclose(mse(x, y), torch.full((2,), 0.125))
    assert torch.isinf(psnr(x, y, mask=left)).all()
    assert torch.allclose(mse(x, y, (1 - left)[:1]), torch.full((2,), 0.25))  # a [1, 1, H, W] mask broadcasts


def test_ssim_decreases_with_noise_and_stays_in_range():
    x = smooth_images(n=3)
    noise = torch.randn_like(x)
    scores = [ssim(x, (x + s * noise).clamp(-1, 1)) for s in (0.0, 0.05, 0.2, 0.5)]
    for a, b in zip(scores, scores[1:]):
        assert (a > b).all()
    assert all(((s >= -1) & (s <= 1)).all() for s in scores)
    assert (ssim(x, -x) < 0.5).all()


def test_ssim_matches_a_direct_loop():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 9, 10, generator=g, dtype=torch.float64) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    window, sigma = 5, 1.2
    t = torch.arange(window, dtype=torch.float64) - 2
    w1 = torch.exp(-(t**2) / (2 * sigma**2))
    w = torch.outer(w1, w1) / torch.outer(w1, w1).sum()
    a, b = (x[0] + 1) / 2, (y[0] + 1) / 2
    values = []
    for ch in range(3):
        for i in range(9 - window + 1):
            for j in range(10 - window + 1):
                pa, pb = a[ch, i : i + window, j : j + window], b[ch, i : i + window, j : j + window]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                num = (2 * ma * mb + 1e-4) * (2 * cov + 9e-4)
                values.append(num / ((ma**2 + mb**2 + 1e-4) * (va + vb + 9e-4)))
    expected = torch.stack(values).mean()
    assert torch.allclose(ssim(x, y, window=window, sigma=sigma), expected.view(1), atol=1e-10)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: mse(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 9)), "same shape"),
        (lambda: mse(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)), r"\[N, 3, H, W\]"),
        (lambda: psnr(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)), r"\[N, 3, H, W\]"),
        (lambda: ssim(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8)), "float"),
        (lambda: mse(np.zeros((1, 3, 8, 8)), torch.zeros(1, 3, 8, 8)), "torch.Tensor"),
        (lambda: mse(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)), "mask"),
        (
            lambda: mse(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), torch.full((2, 1, 8, 8), 2.0)),
            "[0, 1]",
        ),
        (lambda: mse(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), torch.zeros(2, 1, 8, 8)), "no pixel"),
        (lambda: ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)), "window"),
        (lambda: pairwise_diversity(torch.zeros(1, 2, 3, 8, 8), mse), "K >= 2"),
        (lambda: frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2)), "shapes"),
        (lambda: ids_scores(np.zeros((4, 2)), np.zeros((5, 2))), "paired"),
    ],
)
def test_input_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------------- feature-network metrics


def test_lpips_features_recipe_by_hand():
    e1 = torch.zeros(1, 3, 4, 4)
    e1[:, 0] = 0.7
    e2 = torch.zeros(1, 3, 4, 4)
    e2[:, 1] = 0.2
    net = Identity()
    assert torch.allclose(lpips_features(e1, e2, net), torch.tensor([2.0]))  # |e1 - e2|² summed over channels
    assert torch.allclose(lpips_features(e1, 3 * e1, net), torch.zeros(1), atol=1e-6)  # scale invariant
    x, y = smooth_images(seed=1), smooth_images(seed=2)
    d = lpips_features(x, y, TinySFN())
    assert d.shape == (2,) and (d > 0).all() and (d <= 8).all()  # two layers, each in [0, 4]


def test_id_similarity_is_a_cosine():
    x = smooth_images()
    assert torch.allclose(id_similarity(x, -x, Identity()), -torch.ones(2), atol=1e-6)
    assert torch.allclose(id_similarity(x, 0.5 * x, Identity()), torch.ones(2), atol=1e-6)


def test_pairwise_diversity():
    x = smooth_images(n=2)
    assert torch.equal(pairwise_diversity([x, x, x], mse), torch.zeros(2))
    consts = torch.stack([torch.full_like(x, v) for v in (0.0, 0.2, 0.6)])  # K=3 constant samples
    expected = (0.2**2 + 0.6**2 + 0.4**2) / 3
    assert torch.allclose(pairwise_diversity(consts, mse), torch.full((2,), expected))
    net = TinySFN()
    d = pairwise_diversity(torch.stack([x, smooth_images(seed=5), smooth_images(seed=6)]),
                           lambda a, b: lpips_features(a, b, net))  # fmt: skip
    assert (d > 0).all()


def test_pairwise_diversity_mask_ignores_the_outside():
    hole = torch.zeros(2, 1, 16, 16)
    hole[..., 4:12, 4:12] = 1
    base = smooth_images(n=2, size=16)
    other = smooth_images(n=2, size=16, seed=7)
    outside_only = [base, base * hole + other * (1 - hole)]  # the samples differ only outside the hole
    assert torch.equal(pairwise_diversity(outside_only, mse, mask=hole), torch.zeros(2))
    inside = [base, other * hole + base * (1 - hole)]  # ... or only inside it
    assert (pairwise_diversity(inside, mse, mask=hole) > 0).all()
    assert torch.allclose(pairwise_diversity(inside, mse, mask=hole), mse(base, other, hole) * 64 / 256)


# ------------------------------------------------------------------------------------------- LPIPS


def test_lpips_missing_trunk_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("GANINV_LPIPS_TRUNK", raising=False)
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth") as err:
        LPIPS("alex")
    assert str(tmp_path / "hub" / "checkpoints") in str(err.value)
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        LPIPS("vgg")
    monkeypatch.setenv("GANINV_LPIPS_TRUNK", str(tmp_path / "nowhere.pth"))
    with pytest.raises(MissingWeightsError, match="GANINV_LPIPS_TRUNK"):
        LPIPS("alex")
    with pytest.raises(ValueError, match="net must be"):
        LPIPS("squeeze")


def test_lpips_loads_a_local_trunk(tmp_path, monkeypatch):
    from torchvision.models import alexnet

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("GANINV_LPIPS_TRUNK", raising=False)
    trunk = {f"features.{k}": v for k, v in alexnet().features.state_dict().items()}  # classifier not needed
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(trunk, tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth")
    loss = LPIPS("alex")
    assert loss.key == "lpips_alex" and loss.key in metrics.METRIC_NAMES
    assert torch.equal(getattr(loss.model.net.slice2, "3").weight, trunk["features.3.weight"])
    x, y = smooth_images(n=2, size=64), smooth_images(n=2, size=64, seed=9)
    assert torch.allclose(loss(x, x), torch.zeros(2), atol=1e-7)
    assert (loss(x, y) > 0).all() and loss(x, y).shape == (2,)
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="bad.pth"):
        LPIPS("alex", weights_path=bad)


def test_inception_missing_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("GANINV_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match="inception_v3_google-0cc3c7bd.pth"):
        InceptionExtractor()
    assert "not comparable" in InceptionExtractor.__doc__


def test_inception_loads_local_weights(tmp_path, monkeypatch):
    from torchvision.models import inception_v3

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    state = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    path = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    torch.save(state, path)
    monkeypatch.setenv("GANINV_INCEPTION_WEIGHTS", str(tmp_path))  # a folder holding the file
    extractor = InceptionExtractor()
    assert torch.equal(
        extractor.net.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"]
    )
    feats = compute_features(smooth_images(n=1, size=16), extractor)
    assert feats.shape == (1, 2048) and torch.isfinite(feats).all()


# --------------------------------------------------------------------------------------------- FID


def gaussian_samples(n, mean, cov, seed):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(mean, cov, size=n)


def test_fid_same_gaussian_is_near_zero_and_grows_with_a_mean_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(8, 8))
    cov = a @ a.T / 8 + 0.1 * np.eye(8)
    ref = gaussian_samples(2000, np.zeros(8), cov, seed=1)
    assert fid(ref, gaussian_samples(2000, np.zeros(8), cov, seed=2)) < 0.1
    assert fid(torch.from_numpy(ref), torch.from_numpy(ref)) == pytest.approx(0.0, abs=1e-9)
    direction = np.ones(8) / np.sqrt(8)
    values = [fid(ref, gaussian_samples(2000, s * direction, cov, seed=2)) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(16.0, rel=0.05)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert frechet_distance(mu1, cov, mu2, cov) == pytest.approx(((mu1 - mu2) ** 2).sum(), rel=1e-8)
    singular = a[:, :3] @ a[:, :3].T  # rank 3
    assert frechet_distance(mu1, singular, mu2, singular) == pytest.approx(((mu1 - mu2) ** 2).sum(), rel=1e-6)
    v1, v2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T, b @ b.T  # covariances that do not commute
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)


# -------------------------------------------------------------------------------------------- IDS


def test_ids_same_distribution_is_near_one_half():
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
    scores = ids_scores(real, fake)
    assert 0.4 < scores["u_ids"] < 0.55 and 0.4 < scores["p_ids"] < 0.6


def test_ids_separable_sets_score_zero():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(300, 8))
    fake = real + 0.05 * rng.normal(size=(300, 8))
    fake[:, 0] += 10.0  # far along one axis
    assert ids_scores(torch.from_numpy(real), torch.from_numpy(fake)) == {"u_ids": 0.0, "p_ids": 0.0}
    assert ids_scores(real, fake, standardize=True) == {"u_ids": 0.0, "p_ids": 0.0}


# ------------------------------------------------------------------------------- features, summary


def test_compute_features_batches_tensors_and_loaders():
    net = TinySFN()
    x = smooth_images(n=5, size=16)
    extractor = SFNExtractor(net)
    assert not net.training
    whole = net.embed(x).detach()
    assert torch.allclose(compute_features(x, extractor, batch_size=2), whole, atol=1e-6)
    loader = [(x[:3], None), (x[3:], None)]
    assert torch.allclose(compute_features(loader, extractor), whole, atol=1e-6)
    pooled = compute_features(x, SFNExtractor(net, layer=-1), batch_size=4)
    assert pooled.shape == (5, 16)


def test_summarize_gives_plain_floats():
    out = summarize({"psnr": torch.tensor([20.0, 30.0]), "fid_sfn": 1.5, "ssim": torch.tensor([0.5])})
    assert out == {"psnr": 25.0, "psnr_std": 5.0, "fid_sfn": 1.5, "ssim": 0.5}
    assert all(type(v) is float for v in out.values())


def test_metric_names_say_which_network():
    names = metrics.METRIC_NAMES
    assert "SFN" in names["lpips_sfn"] and "AlexNet" in names["lpips_sfn"]
    assert "SFN" in names["fid_sfn"] and "torchvision" in names["fid_inception_tv"]
    assert f"fid_{SFNExtractor.name}" in names and f"fid_{InceptionExtractor.name}" in names
