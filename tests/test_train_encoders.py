"""Stage-2 encoder trainer (CLCAE, pSp, e4e): batches as a pure function of the step, the objective's terms
and the frozen alignment model, learning on a tiny generator, exact resume, the e4e schedule, held-out
evaluation (oracle and untrained encoders), config errors, export and the CLI."""

import json
import math
import os

import pytest
import torch

from ganinv.checkpoints import CheckpointError, load_checkpoint
from ganinv.cli import main as cli_main
from ganinv.data.pairs import held_out_pairs, make_pairs, pair_seed
from ganinv.data.synthfaces import SynthFaces
from ganinv.eval.encoder import evaluate_encoder
from ganinv.models.clcae import CLCAEOutput
from ganinv.models.contrastive import ContrastiveAligner, ContrastiveModelConfig, save_contrastive
from ganinv.models.encoders import EncoderConfig
from ganinv.models.sfn import load_sfn
from ganinv.training import encoders as te

FAST = dict(sfn="", lambda_lpips=0.0, lambda_id=0.0, progress=False)  # MSE only: no SFN in the loop


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sfn():
    return load_sfn("sfn")


@pytest.fixture(scope="module")
def contrastive_file(tmp_path_factory, G):
    """A stage-1 model for the tiny generator (untrained: only its being frozen and used matters here)."""
    torch.manual_seed(1)
    cfg = ContrastiveModelConfig(
        backbone=EncoderConfig.preset("tiny"), style_dim=16, latent_blocks=1, latent_ffn=32, embed_dim=8
    )
    path = tmp_path_factory.mktemp("stage1") / "contrastive.pt"
    save_contrastive(path, ContrastiveAligner.from_generator(G, cfg).eval(), generator="tiny-random")
    return str(path)


def tiny(tmp_path, name, **kw) -> te.EncoderTrainConfig:
    return te.preset("tiny", out_dir=str(tmp_path / name), **{**FAST, **kw})


def _state(out_dir):
    return torch.load(os.path.join(out_dir, "training_state.pt"), weights_only=True)


# -- config ----------------------------------------------------------------------------------------------


def test_config_errors_are_clear(tmp_path, contrastive_file):
    with pytest.raises(ValueError, match=r"unknown kind 'stylegan'.*clcae, psp, e4e"):
        te.train(tiny(tmp_path, "a", kind="stylegan"))
    with pytest.raises(ValueError, match="unknown encoder preset"):
        te.preset("ffhq1024")
    with pytest.raises(
        ValueError, match=r"--use-align true need\(s\) a stage-1 contrastive model.*--contrastive"
    ):
        te.train(tiny(tmp_path, "b", use_align=True))
    with pytest.raises(ValueError, match="--backbone-init contrastive"):
        te.train(tiny(tmp_path, "c", backbone_init="contrastive"))
    missing = tmp_path / "nowhere" / "contrastive.pt"
    with pytest.raises(CheckpointError, match=rf"{missing}.*--contrastive, needed by --use-align true"):
        te.train(tiny(tmp_path, "d", use_align=True, contrastive=str(missing)))
    with pytest.raises(ValueError, match="trained for another generator"):
        te.train(tiny(tmp_path, "e", use_align=True, contrastive=contrastive_file, seed=5))  # G of seed 5
    with pytest.raises(ValueError, match=r"need an SFN: pass --sfn"):
        te.train(tiny(tmp_path, "f", lambda_id=0.1))
    with pytest.raises(ValueError, match="held-out evaluation seed"):
        te.train(tiny(tmp_path, "g", data_seed=te.EVAL_SEED))
    with pytest.raises(ValueError, match=r"unknown attention 'dense' \(--attention\)"):
        te.train(tiny(tmp_path, "h", attention="dense"))
    assert not (tmp_path / "a").exists()  # nothing written before the checks
    assert te.preset("synthfaces64", kind="e4e").out_dir == "runs/e4e"
    # pSp / e4e never need the stage-1 model, whatever the CLCAE-only options say
    G = te.build_generator(te.TINY_RANDOM, 0)
    assert te.load_aligner(te.preset("tiny", kind="psp", use_align=True), G, "cpu") is None


# -- data ------------------------------------------------------------------------------------------------


def test_batches_are_a_pure_function_of_the_step(G):
    cfg = te.preset("tiny", batch_size=6, generated_fraction=0.5)
    data = te.TrainingData(cfg, G, 32)
    x, w, noise = data.batch(3)
    x2, w2, noise2 = te.TrainingData(cfg, G, 32).batch(3)
    assert x.shape == (6, 3, 32, 32) and w.shape == (3, 16)
    assert torch.equal(x, x2) and torch.equal(w, w2) and all(torch.equal(a, b) for a, b in zip(noise, noise2))
    assert len(noise) == G.num_layers and noise[0].shape[0] == 6
    assert not torch.equal(x, data.batch(4)[0])
    assert not torch.equal(x, te.TrainingData(cfg, G, 32, rank=1, world=2).batch(3)[0])
    # generated first, with their true w; then SynthFaces of data_seed in index order (flipped or not)
    images, w_ref = make_pairs(G, 3, pair_seed(te.GEN_STREAM, cfg.data_seed, 3), 32)
    assert torch.equal(x[:3], images) and torch.equal(w, w_ref)
    faces = SynthFaces(32, seed=cfg.data_seed, length=100).get_batch(range(9, 12))["image"]
    for got, face in zip(x[3:], faces):
        assert torch.equal(got, face) or torch.equal(got, face.flip(2))
    plain = te.TrainingData(te.preset("tiny", batch_size=6, flip=False, recon_noise="const"), G, 32)
    x, w, noise = plain.batch(3)
    assert torch.equal(x[3:], faces) and noise is None
    x, w, _ = te.TrainingData(te.preset("tiny", batch_size=4, generated_fraction=0.0), G, 32).batch(0)
    assert w.shape == (0, 16) and x.shape == (4, 3, 32, 32)


# -- objective -------------------------------------------------------------------------------------------


def test_alignment_term_only_when_enabled_and_its_model_stays_frozen(G, contrastive_file):
    cfg = te.preset("tiny", use_align=True, contrastive=contrastive_file, backbone_init="contrastive", **FAST)
    aligner = te.load_aligner(cfg, G, "cpu")
    assert not aligner.training and not any(p.requires_grad for p in aligner.parameters())
    before = {k: v.clone() for k, v in aligner.state_dict().items()}
    torch.manual_seed(0)
    model = te.build_encoder(cfg, G, aligner).train()
    # backbone_init="contrastive": the stage-1 image backbone, while w still starts at w_avg
    for k, v in aligner.image_encoder.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    rec = te.build_reconstruction_loss(cfg, "cpu")
    x, w_true, noise = te.TrainingData(cfg, G, 32).batch(0)
    with_align = te.Objective(cfg, G, rec, aligner)(model, x, w_true, step=1, noise=noise)
    assert {"w", "w+", "f", "freg", "align", "loss"} == set(with_align)
    assert "latent" not in with_align  # analysis-only term: off by default
    with_align["loss"].backward()
    assert all(p.grad is None for p in aligner.parameters())
    assert model.w_head.linear.weight.grad.abs().sum() > 0  # L_align and L_rec reach the encoder
    assert all(torch.equal(v, aligner.state_dict()[k]) for k, v in before.items())
    model.eval()  # no dropout: the two objectives see the same outputs
    with_align = te.Objective(cfg, G, rec, aligner)(model, x, w_true, step=1, noise=noise)
    without = te.Objective(cfg, G, rec, None)(model, x, w_true, step=1, noise=noise)
    assert "align" not in without
    torch.testing.assert_close(without["loss"], with_align["loss"] - with_align["align"])
    latent = te.Objective(te.preset("tiny", lambda_latent=1.0, **FAST), G, rec)(model, x, w_true, 1, noise)
    assert latent["latent"] > 0
    # the ablation switches reach the model: no F branch -> no f image and no F regulariser
    no_f = te.build_encoder(te.preset("tiny", use_f=False), G)
    assert set(te.Objective(cfg, G, rec)(no_f, x, w_true, 1, noise)) == {"w", "w+", "loss"}


def test_training_with_the_alignment_loss_logs_it(tmp_path, contrastive_file):
    result = te.train(tiny(tmp_path, "run", use_align=True, contrastive=contrastive_file, total_steps=2))
    assert result["align"] > 0 and {"w", "w+", "f", "freg", "loss"} <= set(result)
    assert [h["step"] for h in result["history"]] == [1, 2]  # the tiny preset logs every step
    assert result["history"][-1]["loss"] == result["loss"]
    ckpt = load_checkpoint(tmp_path / "run" / "clcae.pt", "clcae")
    assert ckpt["contrastive"] == contrastive_file and ckpt["generator"] == str(
        tmp_path / "run" / "generator.pt"
    )


# -- training --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["clcae", "psp", "e4e"])
def test_tiny_training_lowers_the_held_out_reconstruction_error(tmp_path, G, sfn, kind):
    cfg = tiny(tmp_path, kind, kind=kind, total_steps=20, checkpoint_every=20, batch_size=8, lr=3e-3,
               generated_fraction=0.75, f_ramp_steps=10, e4e_stage_every=4)  # fmt: skip
    torch.manual_seed(cfg.seed)
    untrained = te.build_encoder(cfg, G)
    before = evaluate_encoder(untrained, G, sfn, n=16, source="generated", batch_size=16)
    te.train(cfg)
    model, generator = te.load_trained_encoder(tmp_path / kind / te.EXPORT_FILES[kind])
    assert generator == str(tmp_path / kind / "generator.pt") and not model.training
    after = evaluate_encoder(model, G, sfn, n=16, source="generated", batch_size=16)
    final = "f" if kind == "clcae" else "w_plus"
    assert after[final]["mse"] < 0.9 * before[final]["mse"], (before[final], after[final])


@pytest.mark.parametrize("kind", ["clcae", "e4e"])
def test_resume_continues_exactly(tmp_path, kind, contrastive_file):
    kw = dict(kind=kind, checkpoint_every=2, e4e_stage_every=1)
    if kind == "clcae":  # dropout, the F ramp and L_align all in play
        kw.update(use_align=True, contrastive=contrastive_file, backbone_init="contrastive")
    te.train(tiny(tmp_path, "straight", total_steps=4, **kw))
    te.train(tiny(tmp_path, "split", total_steps=2, **kw))
    te.train(tiny(tmp_path, "split", total_steps=4, resume=True, **kw))
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "split")
    assert a["step"] == b["step"] == 4 and a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    torch.manual_seed(0)
    init = te.build_encoder(tiny(tmp_path, "x", kind=kind), te.build_generator(te.TINY_RANDOM, 0))
    assert any(not torch.equal(v, a["model"][k]) for k, v in init.state_dict().items())
    with pytest.raises(CheckpointError, match="different config"):
        te.train(tiny(tmp_path, "split", total_steps=6, resume=True, **{**kw, "lr": 0.1}))


def test_e4e_stage_advances_per_the_schedule(tmp_path, G):
    cfg = tiny(tmp_path, "e4e", kind="e4e", total_steps=7, checkpoint_every=7, e4e_stage_every=3)
    te.train(cfg)
    model, _ = te.load_trained_encoder(tmp_path / "e4e" / "e4e_encoder.pt")
    assert model.stage == 2  # steps 0-2: stage 0, 3-5: stage 1, 6: stage 2
    torch.manual_seed(cfg.seed)
    init = te.build_encoder(cfg, G)
    for i, (h0, h1) in enumerate(zip(init.heads, model.heads)):
        moved = any(not torch.equal(p0, p1) for p0, p1 in zip(h0.parameters(), h1.parameters()))
        assert moved == (i <= 2), i  # the deltas of layers beyond the stage reached never trained
    assert model.stage_for_step(10**6, 3) == model.max_stage


# -- evaluation ------------------------------------------------------------------------------------------


class Oracle(torch.nn.Module):
    """Knows the w of every held-out generated image: returns it as CLCAE's w and w+ (no f)."""

    def __init__(self, images, w, n_latent):
        super().__init__()
        self.images, self.w, self.n_latent, self.image_size = images, w, n_latent, images.shape[-1]

    def forward(self, x):
        w = self.w[torch.cdist(x.flatten(1), self.images.flatten(1)).argmin(1)]
        return CLCAEOutput(w, w.unsqueeze(1).repeat(1, self.n_latent, 1), None)


def test_evaluate_encoder_oracle_is_perfect_and_real_encoders_finite(tmp_path, G, sfn):
    pairs = list(held_out_pairs(G, 12, te.EVAL_SEED, 32, batch_size=5, noise_mode="const"))
    images = torch.cat([p[0] for p in pairs]).clamp(-1, 1)  # the targets are clamped as saved images
    oracle = Oracle(images, torch.cat([p[1] for p in pairs]), G.n_latent)
    result = evaluate_encoder(oracle, G, sfn, n=12, source="generated", batch_size=5)
    assert set(result) == {"n", "seed", "source", "image_size", "w", "w_plus"}
    for name in ("w", "w_plus"):
        r = result[name]
        assert r["mse"] == pytest.approx(0, abs=1e-10) and math.isinf(r["psnr"])
        assert r["ssim"] == pytest.approx(1, abs=1e-5) and r["lpips_sfn"] == pytest.approx(0, abs=1e-6)
        assert r["id_sfn"] == pytest.approx(1, abs=1e-5) and r["seconds_per_image"] > 0
    keys = {"mse", "psnr", "ssim", "lpips_sfn", "id_sfn", "seconds_per_image"}
    clcae = te.build_encoder(te.preset("tiny"), G).train()
    result = evaluate_encoder(clcae, G, sfn, n=6, batch_size=4)  # held-out SynthFaces
    assert clcae.training and result["source"] == "synthfaces" and result["seed"] == te.EVAL_SEED
    for name in ("w", "w_plus", "f"):
        assert keys <= set(result[name]), name
        assert all(math.isfinite(result[name][k]) for k in keys), result[name]
    psp = te.build_encoder(te.preset("tiny", kind="psp"), G)
    assert {"w", "f"}.isdisjoint(evaluate_encoder(psp, G, sfn, n=2)) and "w_plus" in evaluate_encoder(
        psp, G, sfn, n=2
    )
    with pytest.raises(ValueError, match="source"):
        evaluate_encoder(psp, G, sfn, n=2, source="ffhq")


# -- export and CLI --------------------------------------------------------------------------------------


def test_cli_train_and_eval(tmp_path, capsys):
    out = tmp_path / "psp"
    cli_main(["train", "psp", "--preset", "tiny", "--total-steps", "2", "--out-dir", str(out), "--sfn", "",
              "--lambda-lpips", "0", "--lambda-id", "0", "--progress", "false"])  # fmt: skip
    ckpt = load_checkpoint(out / "psp_encoder.pt", "psp_encoder")
    assert ckpt["step"] == 2 and ckpt["train_config"]["kind"] == "psp"
    out = tmp_path / "clcae"
    cli_main(["train", "clcae", "--preset", "tiny", "--total-steps", "1", "--out-dir", str(out), "--progress",
              "false", "--attention", "multi", "--use-f-attention", "false", "--eval-n", "4"])  # fmt: skip
    assert load_checkpoint(out / "clcae.pt", "clcae")["config"]["attention"] == "multi"
    assert json.loads((out / "eval.json").read_text())["f"]["seconds_per_image"] > 0
    cli_main(["eval", "encoder", "--checkpoint", str(tmp_path / "psp" / "psp_encoder.pt"), "-n", "3",
              "--source", "generated", "--json", str(tmp_path / "e.json")])  # fmt: skip
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["n"] == 3 and math.isfinite(result["w_plus"]["mse"]) and "w" not in result
    with pytest.raises(SystemExit, match="contradicts"):
        cli_main(["train", "e4e", "--preset", "tiny", "--kind", "psp"])
    with pytest.raises(SystemExit, match="unknown backbone_init"):
        cli_main(["train", "clcae", "--preset", "tiny", "--backbone-init", "imagenet"])


# -- speed options ---------------------------------------------------------------------------------------


def test_precision_and_snapshot_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"unknown precision 'fp8' \(--precision\)"):
        te.train(tiny(tmp_path, "a", precision="fp8"))
    for bad in ("12k", "0", "1200,-5"):
        with pytest.raises(ValueError, match="--snapshot-steps takes whole steps"):
            te.train(tiny(tmp_path, "b", snapshot_steps=bad))
    assert te.snapshot_steps(tiny(tmp_path, "c", snapshot_steps=" 3, 1,3")) == {1, 3}
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_snapshots_keep_the_export_of_their_step(tmp_path):
    cfg = tiny(tmp_path, "run", kind="psp", total_steps=4, checkpoint_every=4, snapshot_steps="1,3")
    te.train(cfg)
    snaps = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snaps == ["step_000001", "step_000003"]
    steps = [load_checkpoint(tmp_path / "run" / "snapshots" / s / "psp_encoder.pt")["step"] for s in snaps]
    assert steps == [1, 3] and load_checkpoint(tmp_path / "run" / "psp_encoder.pt")["step"] == 4


def test_bf16_changes_the_losses_only_by_rounding_and_may_be_switched_on_resume(tmp_path):
    kw = dict(kind="clcae", total_steps=3, checkpoint_every=1, log_every=1)
    fp32 = te.train(tiny(tmp_path, "fp32", **kw))["history"]
    bf16 = te.train(tiny(tmp_path, "bf16", precision="bf16", **kw))["history"]
    for a, b in zip(fp32, bf16, strict=True):
        assert a["loss"] != b["loss"] and abs(a["loss"] - b["loss"]) < 0.03 * a["loss"], (a, b)
        assert b["wall_s"] >= 0
    with pytest.warns(UserWarning, match="precision"):
        te.train(tiny(tmp_path, "fp32", resume=True, precision="bf16", **{**kw, "total_steps": 4}))


@pytest.mark.slow
def test_compiled_generator_gives_the_eager_losses(tmp_path):
    kw = dict(kind="clcae", total_steps=2, checkpoint_every=2, log_every=1, f_ramp_steps=4)
    eager = te.train(tiny(tmp_path, "eager", **kw))["history"]
    compiled = te.train(tiny(tmp_path, "compiled", compile=True, **kw))["history"]
    for a, b in zip(eager, compiled, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4 * a["loss"], (a, b)
