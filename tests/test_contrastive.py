"""CLCAE stage 1: symmetric InfoNCE values, the temperature clamp, the encoders' inputs, L_align for stage 2,
held-out retrieval (oracle and random), training, exact resume, checkpoints and the CLI."""

import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from ganinv.checkpoints import CheckpointError, save_checkpoint
from ganinv.cli import main as cli_main
from ganinv.data.pairs import held_out_pairs, make_pairs
from ganinv.eval.retrieval import evaluate_retrieval
from ganinv.models.contrastive import (
    ContrastiveAligner,
    ContrastiveModelConfig,
    alignment_loss,
    info_nce,
    load_contrastive,
    save_contrastive,
    top_k_accuracy,
)
from ganinv.models.encoders import EncoderConfig
from ganinv.training import contrastive as ct

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**kw) -> ContrastiveModelConfig:
    values = dict(
        backbone=EncoderConfig.preset("tiny"), style_dim=16, latent_blocks=1, latent_ffn=32, embed_dim=8
    )
    return ContrastiveModelConfig(**{**values, **kw})


def tiny_run(tmp_path, name, **kw) -> ct.ContrastiveConfig:
    return ct.preset("tiny", out_dir=str(tmp_path / name), progress=False, **kw)


# -- the loss --------------------------------------------------------------------------------------------


def test_info_nce_of_identical_embeddings_is_log_n():
    e = torch.randn(1, 5).expand(6, 5)  # every similarity equal: a uniform softmax over 6
    out = info_nce(e, e.clone(), temperature=0.3)
    for v in (out.loss, out.image_to_latent, out.latent_to_image):
        torch.testing.assert_close(v, torch.tensor(math.log(6)))


def test_info_nce_of_aligned_distinct_embeddings_vanishes_at_low_temperature():
    e = torch.eye(8)[:, :8] * 3.0  # orthogonal; scaling does not matter (cosine)
    assert info_nce(e, e, temperature=0.01).loss < 1e-20
    assert info_nce(e, e.roll(1, 0), temperature=0.01).loss > 50  # every pair mismatched


def test_symmetric_loss_is_the_average_of_both_directions_by_hand():
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    t = 0.2
    cos = [[F.cosine_similarity(a[i], b[k], dim=0).item() / t for k in range(5)] for i in range(5)]
    i2w = sum(-cos[i][i] + math.log(sum(math.exp(cos[i][k]) for k in range(5))) for i in range(5)) / 5
    w2i = sum(-cos[k][k] + math.log(sum(math.exp(cos[i][k]) for i in range(5))) for k in range(5)) / 5
    out = info_nce(a, b, t)
    assert out.image_to_latent.item() == pytest.approx(i2w, rel=1e-5)
    assert out.latent_to_image.item() == pytest.approx(w2i, rel=1e-5)
    assert out.loss.item() == pytest.approx((i2w + w2i) / 2, rel=1e-5)
    assert info_nce(a, b, t, weight=0.8).loss.item() == pytest.approx(0.8 * i2w + 0.2 * w2i, rel=1e-5)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        info_nce(a, b[:4], t)


def test_top_k_accuracy():
    logits = torch.eye(6) + 0.1 * torch.arange(6.0)  # row i ranks column i first; column k ranks row k first
    assert top_k_accuracy(logits, 1) == (1.0, 1.0)
    shifted = logits.roll(1, dims=1)  # the match of row i is now ranked after column i+1's entry
    assert top_k_accuracy(shifted, 1) == (0.0, 0.0) and top_k_accuracy(shifted, 6) == (1.0, 1.0)


# -- the model -------------------------------------------------------------------------------------------


def test_temperature_starts_at_007_and_is_clamped():
    model = ContrastiveAligner(tiny_config())
    assert model.temperature.item() == pytest.approx(0.07)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.001))  # t = 0.001 is below min_temperature
    assert model.temperature.item() == pytest.approx(0.01)
    model.logit_scale.grad = None
    model.temperature.backward()
    assert model.logit_scale.grad.item() == 0.0  # no push further out of bounds
    model.clamp_temperature_()
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    with torch.no_grad():
        model.logit_scale.fill_(-3.0)  # t = e^3 > max_temperature 1
    assert model.temperature.item() == pytest.approx(1.0)
    frozen_t = ContrastiveAligner(tiny_config(learn_temperature=False))
    assert not frozen_t.logit_scale.requires_grad
    with pytest.raises(ValueError, match="min_temperature"):
        tiny_config(temperature=0.005)


def test_embeddings_shapes_centring_and_input_checks(G):
    model = ContrastiveAligner.from_generator(G, tiny_config()).eval()
    torch.testing.assert_close(model.w_avg, G.get_w_avg())
    torch.testing.assert_close(model.image_avg, G.synthesis(G.get_w_avg()[None], noise_mode="const")[0])
    images, w = make_pairs(G, 4, seed=1, size=32)
    e_i, e_w = model.embed_image(images), model.embed_latent(w)
    assert e_i.shape == e_w.shape == (4, 8)
    torch.testing.assert_close(e_i.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(e_w.norm(dim=1), torch.ones(4))
    # h_w sees w - w_avg: w_avg itself is encoded like a zero offset
    expected = F.normalize(model.latent_projection(model.latent_encoder(torch.zeros(1, 16))), dim=1)
    torch.testing.assert_close(model.embed_latent(G.get_w_avg()[None]), expected)
    with pytest.raises(ValueError, match=r"expected shape \[\*, 3, 32, 32\]"):
        model.embed_image(torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"W space.*expected shape \[\*, 16\]"):
        model.embed_latent(G.broadcast(w))
    with pytest.raises(ValueError, match="style_dim"):
        ContrastiveAligner.from_generator(G, tiny_config(style_dim=8))


def test_alignment_loss_for_stage_2(G):
    model = ContrastiveAligner.from_generator(G, tiny_config())
    images, w = make_pairs(G, 4, seed=2, size=32)
    with pytest.raises(ValueError, match="frozen"):
        alignment_loss(model, images, w)
    model.eval().requires_grad_(False)
    w = w.clone().requires_grad_(True)
    big = F.interpolate(images, scale_factor=2, mode="nearest").requires_grad_(True)  # pooled back to 32
    loss = alignment_loss(model, big, w)
    torch.testing.assert_close(loss, model(images, w).loss)
    loss.backward()
    assert w.grad.abs().sum() > 0 and big.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="N >= 2"):
        alignment_loss(model, images[:1], w[:1])
    with pytest.raises(ValueError, match="cannot pool"):
        alignment_loss(model, images[:, :, :24, :24], w)


def test_save_load_round_trip_and_errors(tmp_path, G, monkeypatch):
    model = ContrastiveAligner.from_generator(G, tiny_config()).eval()
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    save_contrastive(tmp_path / "c.pt", model, generator="x")
    loaded = load_contrastive(tmp_path / "c.pt")
    assert loaded.cfg == model.cfg and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    images, w = make_pairs(G, 3, seed=4, size=32)
    torch.testing.assert_close(loaded.embed_image(images), model.embed_image(images))
    torch.testing.assert_close(loaded.temperature, model.temperature)
    save_checkpoint(tmp_path / "g.pt", "generator", {}, {})
    with pytest.raises(CheckpointError, match="expected 'contrastive'"):
        load_contrastive(tmp_path / "g.pt")
    sd = model.state_dict()
    sd.pop("logit_scale")
    save_checkpoint(tmp_path / "bad.pt", "contrastive", model.config, sd)
    with pytest.raises(CheckpointError, match="logit_scale"):
        load_contrastive(tmp_path / "bad.pt")
    monkeypatch.setenv("GANINV_PRETRAINED_DIR", str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match="no pretrained model 'synthfaces64'.*ganinv train gan"):
        ct.build_generator("synthfaces64")
    with pytest.raises(ValueError, match="no generator given"):
        ct.build_generator("")


# -- data and retrieval ----------------------------------------------------------------------------------


def test_pairs_are_a_pure_function_of_step_and_streams_are_disjoint(G):
    cfg = ct.preset("tiny")
    a = ct.training_pairs(G, cfg, 32, step=3)
    b = ct.training_pairs(G, cfg, 32, step=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], ct.training_pairs(G, cfg, 32, step=4)[1])
    assert not torch.equal(a[1], ct.training_pairs(G, cfg, 32, step=3, rank=1, world=2)[1])
    held = next(held_out_pairs(G, 8, seed=cfg.data_seed, size=32))
    assert torch.cdist(held[1], torch.cat([ct.training_pairs(G, cfg, 32, s)[1] for s in range(4)])).min() > 0
    # the images really are G(w), and the w are mapped codes of z ~ N(0, I) drawn from the seed
    images, w = make_pairs(G, 3, seed=5, size=32, noise_mode="const")
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(w, G.mapping(z))
    torch.testing.assert_close(images, G.synthesis(w, noise_mode="const"))


class Oracle(torch.nn.Module):
    """Knows every held-out pair: embeds image i and latent i as the same one-hot vector."""

    def __init__(self, images, w):
        super().__init__()
        self.images, self.w, self.image_size = images, w, images.shape[-1]
        self.temperature = torch.tensor(0.1)

    def _one_hot(self, x, table):
        idx = torch.cdist(x.flatten(1), table.flatten(1)).argmin(1)
        return F.one_hot(idx, len(table)).float()

    def embed_image(self, images):
        return self._one_hot(images, self.images)

    def embed_latent(self, w):
        return self._one_hot(w, self.w)


def test_retrieval_of_an_oracle_is_perfect_and_of_random_encoders_near_chance(G):
    pairs = list(held_out_pairs(G, 40, seed=11, size=32, batch_size=16))
    oracle = Oracle(torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]))
    result = evaluate_retrieval(oracle, G, n=40, seed=11, batch_size=16)
    for key in (
        "image_to_latent_top1",
        "latent_to_image_top1",
        "image_to_latent_top5",
        "latent_to_image_top5",
    ):
        assert result[key] == 1.0, key
    assert result["cos_positive"] == pytest.approx(1.0) and result["cos_negative"] == pytest.approx(0.0)
    assert result["chance_top1"] == pytest.approx(1 / 40) and result["chance_top5"] == pytest.approx(5 / 40)
    torch.manual_seed(0)
    random_model = ct.build_model(ct.preset("tiny"), G)
    result = evaluate_retrieval(random_model, G, n=100, seed=11)
    assert random_model.training  # restored
    assert result["image_to_latent_top1"] <= 0.06 and result["latent_to_image_top1"] <= 0.06
    assert result["image_to_latent_top5"] <= 0.2 and result["latent_to_image_top5"] <= 0.2


# -- training --------------------------------------------------------------------------------------------


def test_tiny_training_lowers_the_held_out_loss(tmp_path, G):
    cfg = tiny_run(tmp_path, "run", total_steps=40, batch_size=16, lr=3e-3, checkpoint_every=40)
    torch.manual_seed(cfg.seed)
    before = evaluate_retrieval(ct.build_model(cfg, G), G, n=64)
    result = ct.train(cfg)
    assert result["step"] == 40 and {"loss", "acc", "tau"} <= set(result)
    after = evaluate_retrieval(load_contrastive(tmp_path / "run" / "contrastive.pt"), G, n=64)
    assert after["loss"] < before["loss"] - 1.0 and after["loss"] < math.log(64)
    assert after["latent_to_image_top5"] > 3 * after["chance_top5"]


def _state(out_dir):
    return torch.load(os.path.join(out_dir, "training_state.pt"), weights_only=True)


def test_resume_continues_exactly(tmp_path):
    ct.train(tiny_run(tmp_path, "straight", total_steps=4, checkpoint_every=2))
    ct.train(tiny_run(tmp_path, "split", total_steps=2, checkpoint_every=2))
    ct.train(tiny_run(tmp_path, "split", total_steps=4, checkpoint_every=2, resume=True))
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "split")
    assert a["step"] == b["step"] == 4 and a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    G = ct.build_generator(ct.TINY_RANDOM, 0)
    torch.manual_seed(0)
    init = ct.build_model(tiny_run(tmp_path, "x"), G).state_dict()
    assert not torch.equal(init["logit_scale"], a["model"]["logit_scale"])
    with pytest.raises(CheckpointError, match="different config"):
        ct.train(tiny_run(tmp_path, "split", total_steps=6, resume=True, temperature=0.1))
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        ct.train(tiny_run(tmp_path, "one", batch_size=1))
    with pytest.raises(ValueError, match="unknown contrastive preset"):
        ct.preset("ffhq1024")


def test_cli_train_and_eval(tmp_path):
    out = tmp_path / "run"
    cli_main(["train", "contrastive", "--preset", "tiny", "--total-steps", "2", "--out-dir", str(out)])
    ckpt = torch.load(out / "contrastive.pt", weights_only=True)
    assert ckpt["kind"] == "contrastive" and ckpt["generator"] == str(out / "generator.pt")
    cli_main(["eval", "contrastive", "--checkpoint", str(out / "contrastive.pt"), "-n", "20", "--json",
              str(tmp_path / "e.json")])  # fmt: skip
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["n"] == 20 and 0 <= result["image_to_latent_top5"] <= 1
