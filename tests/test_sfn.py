"""SFN (SynthFaces feature network): API shapes, validation, checkpoints, exact resume, identity pairs,
the CLI, and a held-out quality check of the bundled model."""

import json
import os

import numpy as np
import pytest
import torch

from ganinv.checkpoints import CheckpointError, save_checkpoint
from ganinv.cli import main as cli_main
from ganinv.data import identity
from ganinv.data import synthfaces as sf
from ganinv.models.sfn import SFN, SFNConfig, load_sfn, save_sfn
from ganinv.training import sfn as sfn_train

BUNDLED = os.path.join(os.path.dirname(__file__), "..", "data", "pretrained", "sfn", "sfn.pt")


def tiny_model() -> SFN:
    torch.manual_seed(0)
    return SFN(SFNConfig(widths=(4, 8), embed_dim=8)).eval()


def faces(n, size, seed=3):
    return torch.from_numpy(sf.render(sf.sample_factors(seed, np.arange(n)), size)[0])


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_of_every_method(size):
    model = tiny_model()
    x = faces(3, size)
    feats = model.features(x)
    assert [tuple(f.shape) for f in feats] == [(3, 4, 32, 32), (3, 8, 16, 16)]  # resized to 64 first
    assert model.pooled(x).shape == (3, model.cfg.hidden)
    emb = model.embed(x)
    assert emb.shape == (3, 8)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    logits = model.logits(x)
    assert set(logits) == set(sf.FACTOR_NAMES) | {"embedding"}
    for name in sf.BINARY_ATTRIBUTES + sf.CONTINUOUS_FACTORS:
        assert logits[name].shape == (3,)
    assert logits["hair_style"].shape == (3, len(sf.HAIR_STYLES))
    assert logits["embedding"].shape == (3, 8)
    for k, v in model(x).items():
        torch.testing.assert_close(v, logits[k])
    assert set(model.attributes(x)) == set(sf.FACTOR_NAMES)


def test_attribute_ranges():
    model = tiny_model()
    with torch.no_grad():
        model.head_continuous.bias.fill_(5.0)  # push raw outputs outside [0, 1]: must be clamped
    attrs = model.attributes(faces(5, 64))
    for f in sf.FACTORS:
        v = attrs[f.name]
        assert v.shape == (5,)
        if f.kind == "binary":
            assert v.is_floating_point() and (v >= 0).all() and (v <= 1).all()
        elif f.kind == "continuous":
            assert (v >= f.low).all() and (v <= f.high).all()
        else:
            assert v.dtype == torch.int64 and (v >= 0).all() and (v < f.num_classes).all()


def test_input_validation():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        model.embed(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        model.attributes(torch.zeros(2, 1, 64, 64))
    with pytest.raises(ValueError, match="floating-point"):
        model.features(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model.pooled(np.zeros((2, 3, 64, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="widths"):
        SFNConfig(widths=())


def test_save_load_round_trip_fp16(tmp_path):
    model = tiny_model()
    x = faces(4, 64)
    path = tmp_path / "sfn.pt"
    save_sfn(path, model, half=True, note="test")
    loaded = load_sfn(path)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.cfg == model.cfg
    with torch.no_grad():
        a, b = model.logits(x), loaded.logits(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-2, rtol=2e-2, msg=k)
    assert load_sfn(tmp_path).cfg == model.cfg  # a folder holding sfn.pt


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_sfn(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "g.pt", "generator", {}, {})
    with pytest.raises(CheckpointError, match="expected 'sfn'"):
        load_sfn(tmp_path / "g.pt")
    model = tiny_model()
    sd = model.state_dict()
    sd.pop("fc.bias")
    save_checkpoint(tmp_path / "bad.pt", "sfn", model.config, sd)
    with pytest.raises(CheckpointError, match="fc.bias"):
        load_sfn(tmp_path / "bad.pt")
    save_checkpoint(tmp_path / "badcfg.pt", "sfn", {"colour": 1}, model.state_dict())
    with pytest.raises(CheckpointError, match="config"):
        load_sfn(tmp_path / "badcfg.pt")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError):
        load_sfn(tmp_path / "junk.pt")


def test_identity_pairs_differ_only_in_nuisance_factors():
    idx = np.arange(200)
    anchor, positive = identity.identity_pairs(0, idx, 0 + identity.NUISANCE_SEED_OFFSET)
    assert set(identity.IDENTITY_FACTORS) | set(identity.NUISANCE_FACTORS) == set(sf.FACTOR_NAMES)
    assert not set(identity.IDENTITY_FACTORS) & set(identity.NUISANCE_FACTORS)
    for name in identity.IDENTITY_FACTORS:
        np.testing.assert_array_equal(anchor[name], positive[name], err_msg=name)
    for name in identity.NUISANCE_FACTORS:
        assert (anchor[name] != positive[name]).any(), name
    for name in ("yaw", "lighting", "background"):
        assert (anchor[name] != positive[name]).mean() > 0.99
    # and the training batch really holds anchors then positives of the same faces
    cfg = sfn_train.preset("tiny", translate=0, blur_prob=0.0, noise_std=0.0)
    images, targets = sfn_train.training_batch(cfg, step=5)
    b = cfg.batch_size
    assert images.shape == (2 * b, 3, 32, 32)
    for name in identity.IDENTITY_FACTORS:
        torch.testing.assert_close(targets[name][:b], targets[name][b:])
    direct = sf.synthfaces(cfg.data_seed, np.arange(5 * b, 6 * b), 32)["image"]
    torch.testing.assert_close(images[:b], torch.from_numpy(direct))


def test_augmentation_is_seeded_and_mild():
    x = faces(6, 64)
    cfg = sfn_train.preset("sfn64")
    a = sfn_train.augment(x, cfg, torch.Generator().manual_seed(1))
    b = sfn_train.augment(x, cfg, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == x.shape and not torch.equal(a, x)
    assert (a - x).abs().mean() < 0.2
    off = sfn_train.preset("sfn64", translate=0, blur_prob=0.0, noise_std=0.0)
    assert torch.equal(sfn_train.augment(x, off, torch.Generator().manual_seed(1)), x)


def test_info_nce_prefers_matching_views():
    z = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    good = sfn_train.info_nce(torch.cat([z, z]), 0.1)
    bad = sfn_train.info_nce(torch.cat([z, z.roll(1, 0)]), 0.1)
    assert good < 0.1 < bad


def test_learning_rate_schedule():
    cfg = sfn_train.preset("sfn64")
    lrs = [sfn_train.learning_rate(cfg, s) for s in range(cfg.total_steps)]
    assert lrs[0] < lrs[cfg.warmup_steps - 1] == pytest.approx(cfg.lr)
    assert all(a >= b for a, b in zip(lrs[cfg.warmup_steps :], lrs[cfg.warmup_steps + 1 :]))
    assert lrs[-1] == pytest.approx(cfg.lr * cfg.min_lr_ratio, rel=1e-3)


def _state(out_dir):
    return torch.load(os.path.join(out_dir, "training_state.pt"), weights_only=True)


def test_resume_continues_exactly(tmp_path):
    def tiny(name, **kw):
        return sfn_train.preset("tiny", out_dir=str(tmp_path / name), progress=False, **kw)

    sfn_train.train(tiny("straight", total_steps=4, checkpoint_every=2))
    sfn_train.train(tiny("split", total_steps=2, checkpoint_every=2))
    sfn_train.train(tiny("split", total_steps=4, checkpoint_every=2, resume=True))
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "split")
    assert a["step"] == b["step"] == 4
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    torch.manual_seed(0)
    init = SFN(sfn_train.model_config(tiny("x")))
    assert not torch.equal(init.state_dict()["fc.weight"], a["model"]["fc.weight"])
    model = load_sfn(tmp_path / "straight" / "sfn.pt")
    assert model.cfg.widths == (4, 8) and model.cfg.size == 32
    with pytest.raises(CheckpointError, match="different config"):
        sfn_train.train(tiny("split", total_steps=6, resume=True, temperature=0.5))


def test_evaluate_and_cli(tmp_path):
    out = tmp_path / "run"
    cli_main(["train", "sfn", "--preset", "tiny", "--total-steps", "2", "--out-dir", str(out)])
    cli_main(
        ["eval", "sfn", "--checkpoint", str(out / "sfn.pt"), "-n", "12", "--json", str(tmp_path / "e.json")]
    )
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["binary_accuracy"]) == set(sf.BINARY_ATTRIBUTES)
    assert set(result["continuous_r2"]) == set(sf.CONTINUOUS_FACTORS)
    assert set(result["categorical_accuracy"]) == set(sf.CATEGORICAL_FACTORS)
    assert 0 <= result["identity_top1"] <= 1 and result["n"] == 12
    with pytest.raises(ValueError, match="unknown SFN preset"):
        sfn_train.preset("sfn1024")


@pytest.mark.skipif(not os.path.exists(BUNDLED), reason="no bundled data/pretrained/sfn/sfn.pt")
def test_bundled_sfn_reads_binary_attributes_on_fresh_faces():
    model = load_sfn(BUNDLED)
    seed = 31337  # neither the training seed (0) nor the evaluation seed of eval.json
    factors = sf.sample_factors(seed, np.arange(256))
    images = torch.from_numpy(sf.render(factors, 64)[0])
    with torch.no_grad():
        attrs = model.attributes(images)
        same = model.embed(images[:8]) @ model.embed(images[:8]).t()
    for name in sf.BINARY_ATTRIBUTES:
        acc = ((attrs[name] > 0.5).numpy() == (factors[name] == 1)).mean()
        assert acc >= 0.95, f"{name}: held-out accuracy {acc:.3f}"
    torch.testing.assert_close(same.diagonal(), torch.ones(8), atol=1e-4, rtol=0)
