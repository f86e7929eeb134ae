"""GAN trainer: exact resume, config checks, multi-process training, and the regularisers' values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganinv.checkpoints import CheckpointError, load_generator
from ganinv.models.stylegan2 import Discriminator
from ganinv.training import gan


def tiny(tmp_path, name, **kw):
    return gan.preset("tiny", out_dir=str(tmp_path / name), progress=False, **kw)


def _weights(out_dir):
    state = torch.load(os.path.join(out_dir, "training_state.pt"), weights_only=True)
    return state["G"], state["D"], state["G_ema"], state["step"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_continues_exactly(tmp_path, precision):
    straight = tiny(tmp_path, "straight", total_steps=8, checkpoint_every=4, precision=precision)
    gan.train(straight)
    # stop after the step-4 checkpoint, then resume to 8 in a "new run"
    gan.train(tiny(tmp_path, "split", total_steps=4, checkpoint_every=4, precision=precision))
    gan.train(tiny(tmp_path, "split", total_steps=8, checkpoint_every=4, resume=True, precision=precision))
    a, b = _weights(straight.out_dir), _weights(tmp_path / "split")
    assert a[3] == b[3] == 8
    for sa, sb in zip(a[:3], b[:3]):
        assert sa.keys() == sb.keys()
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)
    # and training moved the weights at all
    init = tiny(tmp_path, "x")
    torch.manual_seed(init.seed)
    G0, _ = gan.build_models(init)
    assert not torch.equal(G0.state_dict()["convs.0.conv.weight"], a[0]["convs.0.conv.weight"])


def test_exported_generator_loads_and_samples(tmp_path):
    cfg = tiny(tmp_path, "run", total_steps=2)
    gan.train(cfg)
    G = load_generator(tmp_path / "run" / "generator.pt")
    assert G.size == 32 and not torch.isnan(G.w_avg).any()
    assert G(torch.randn(2, G.style_dim)).shape == (2, 3, 32, 32)


def test_resume_with_another_config_is_refused(tmp_path):
    gan.train(tiny(tmp_path, "run", total_steps=2))
    with pytest.raises(CheckpointError, match="different config"):
        gan.train(tiny(tmp_path, "run", total_steps=4, resume=True, lr=0.01))


def test_run_saved_before_a_field_existed_resumes_with_its_default(tmp_path):
    gan.train(tiny(tmp_path, "run", total_steps=2))
    path = tmp_path / "run" / "training_state.pt"
    state = torch.load(path, weights_only=False)
    del state["config"]["precision"]  # as written before GANConfig.precision existed
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="'mbstd_group': \\(4, 2\\)"):
        gan.train(tiny(tmp_path, "run", total_steps=3, resume=True, mbstd_group=2))
    # the missing field reads as its default, "fp32": so this resume is a switch of precision
    with pytest.warns(UserWarning, match="precision: 'fp32' -> 'bf16'"):
        gan.train(tiny(tmp_path, "run", total_steps=3, resume=True, precision="bf16"))
    assert torch.load(path, weights_only=True)["config"]["precision"] == "bf16"


def test_a_run_may_switch_precision_when_resumed(tmp_path):
    gan.train(tiny(tmp_path, "run", total_steps=2, checkpoint_every=2))
    with pytest.warns(UserWarning, match="resuming step 2 with precision: 'fp32' -> 'bf16'"):
        assert gan.train(tiny(tmp_path, "run", total_steps=4, resume=True, precision="bf16"))["step"] == 4
    # the model and objective stay locked: a real change is still refused
    with pytest.raises(CheckpointError, match="different config"):
        gan.train(tiny(tmp_path, "run", total_steps=6, resume=True, precision="bf16", r1_gamma=1.0))


def test_bf16_autocast_changes_the_numbers_but_not_the_loss_much():
    torch.manual_seed(0)
    D = Discriminator(32, channel_multiplier=0.125, channel_max=16, stddev_group=4)
    real, fake = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    losses = {}
    for precision in ("fp32", "bf16"):
        opt = torch.optim.SGD(D.parameters(), lr=0.0)  # lr 0: D stays the same for both
        procs = gan.Processes("cpu")
        losses[precision], _ = gan.discriminator_step(D, opt, procs, real, fake, 1.0, 0, 1, precision)
    assert losses["bf16"].dtype == torch.float32
    assert losses["bf16"].item() != losses["fp32"].item()  # bf16 really was used
    assert abs(losses["bf16"].item() - losses["fp32"].item()) < 0.02 * abs(losses["fp32"].item())
    with pytest.raises(ValueError, match="precision must be one of"):
        gan.preset("tiny", precision="fp16")


def test_bad_presets_and_data():
    with pytest.raises(ValueError, match="unknown GAN preset"):
        gan.preset("ffhq1024")
    with pytest.raises(ValueError, match="data is empty"):
        gan.RealImages(gan.preset("ffhq256"), 0, 1)


def test_real_batches_are_a_function_of_step_and_rank():
    cfg = gan.preset("tiny")
    a, b = gan.RealImages(cfg, 0, 2), gan.RealImages(cfg, 1, 2)
    torch.testing.assert_close(a.batch(3), gan.RealImages(cfg, 0, 2).batch(3))
    assert not torch.equal(a.batch(3), b.batch(3))
    assert not torch.equal(a.batch(3), a.batch(4))


def test_r1_penalty_of_a_linear_discriminator():
    """For D(x) = <a, x> + c the R1 term is |a|^2 exactly."""
    D = Discriminator(8, channel_max=4)

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.randn(1, 3, 8, 8)

        def forward(self, x):
            return (x * self.a).flatten(1).sum(1, keepdim=True) + 1.0

    lin = Linear()
    torch.testing.assert_close(gan.r1_penalty(lin, torch.randn(4, 3, 8, 8)), lin.a.pow(2).sum())
    assert gan.r1_penalty(D, torch.randn(4, 3, 8, 8)) > 0


def test_lazy_adam_correction():
    opt = gan.lazy_adam([torch.nn.Parameter(torch.zeros(1))], 0.0025, 16)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert group["betas"][1] == pytest.approx(0.99 ** (16 / 17))


@pytest.mark.slow
def test_torchrun_two_processes_keep_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "ganinv.cli",
        "train",
        "gan",
        "--preset",
        "tiny",
        "--total-steps",
        "4",
        "--checkpoint-every",
        "4",
        "--out-dir",
        str(out),
        "--progress",
        "false",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    s0 = torch.load(out / "training_state.pt", weights_only=True)
    s1 = torch.load(out / "training_state.rank1.pt", weights_only=True)
    # each process saw different data, so only averaged gradients keep the replicas equal
    for k in s0["G"]:
        torch.testing.assert_close(s0["G"][k], s1["G"][k], msg=k)
    for k in s0["D"]:
        torch.testing.assert_close(s0["D"][k], s1["D"][k], msg=k)
    assert s0["step"] == 4


def test_every_trainer_option_is_documented_in_help(capsys):
    import dataclasses

    from ganinv.cli import main
    from ganinv.training.contrastive import ContrastiveConfig
    from ganinv.training.encoders import EncoderTrainConfig
    from ganinv.training.inpainting import InpaintTrainConfig
    from ganinv.training.loop import field_docs
    from ganinv.training.sfn import SFNTrainConfig

    for cls in (gan.GANConfig, SFNTrainConfig, ContrastiveConfig, EncoderTrainConfig, InpaintTrainConfig):
        docs = field_docs(cls)
        assert [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)] == [], cls.__name__
    docs = field_docs(gan.GANConfig)
    assert docs["precision"].startswith('"bf16": autocast')  # the subclass's own comment
    assert docs["resume"].startswith("continue from")  # inherited from LoopConfig
    with pytest.raises(SystemExit):
        main(["train", "gan", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--r1-every R1_EVERY lazy R1 interval" in text


def test_load_run_generator_reads_the_raw_and_the_ema_generator(tmp_path):
    run = tmp_path / "run"
    gan.train(tiny(tmp_path, "run", total_steps=3, checkpoint_every=3))
    state = torch.load(run / "training_state.pt", weights_only=True)
    G = gan.load_run_generator(run / "training_state.pt", "G")
    assert G.training_record == {"step": 3, "images_seen": 12} and not G.training
    for k, v in G.state_dict().items():
        torch.testing.assert_close(v, state["G"][k], rtol=0, atol=0, msg=k)
    # G_ema from the run folder is the generator.pt the trainer exported
    z = torch.randn(2, G.style_dim)
    ema, exported = gan.load_run_generator(run, "G_ema"), load_generator(run / "generator.pt")
    torch.testing.assert_close(ema(z, noise_mode="const"), exported(z, noise_mode="const"))
    assert not torch.equal(G(z, noise_mode="const"), exported(z, noise_mode="const"))
    with pytest.raises(ValueError, match="which must be"):
        gan.load_run_generator(run, "D")
    (tmp_path / "junk.pt").write_bytes(b"not a state")
    with pytest.raises(CheckpointError, match="cannot read the training state"):
        gan.load_run_generator(tmp_path / "junk.pt")


def test_a_branch_starts_from_its_parents_state_with_its_own_settings(tmp_path):
    gan.train(tiny(tmp_path, "parent", total_steps=4, checkpoint_every=4))
    parent = torch.load(tmp_path / "parent" / "training_state.pt", weights_only=True)
    branch = tiny(tmp_path, "branch", total_steps=5, init=str(tmp_path / "parent"), lr=0.01, batch_size=2)
    gan.train(branch)
    state = torch.load(tmp_path / "branch" / "training_state.pt", weights_only=True)
    assert state["step"] == 5
    assert state["images_seen"] == 4 * 4 + 2  # the parent's 16 images, then one batch of 2
    record = load_generator(tmp_path / "branch" / "generator.pt").training_record
    assert record == {"step": 5, "images_seen": 18}
    # Adam moments carried over (a fresh optimiser would be at step 1 or 2), the learning rate from the
    # branch's config (with the lazy-regularisation factor)
    c = branch.r1_every / (branch.r1_every + 1)
    assert state["d_opt"]["param_groups"][0]["lr"] == pytest.approx(0.01 * c)
    assert state["d_opt"]["state"][0]["step"] > parent["d_opt"]["state"][0]["step"] >= 4
    # the weights start from the parent's: a branch that barely learns stays at them
    gan.train(tiny(tmp_path, "still", total_steps=5, init=str(tmp_path / "parent"), lr=1e-12))
    still = torch.load(tmp_path / "still" / "training_state.pt", weights_only=True)
    for name in ("G", "D"):
        for k, v in parent[name].items():
            torch.testing.assert_close(still[name][k], v, rtol=0, atol=1e-6, msg=k)
    with pytest.raises(CheckpointError, match="another architecture"):
        gan.train(tiny(tmp_path, "other", total_steps=5, init=str(tmp_path / "parent"), style_dim=8))


def test_a_branch_can_start_from_an_exported_model(tmp_path):
    gan.train(tiny(tmp_path, "parent", total_steps=4, checkpoint_every=4))
    parent = torch.load(tmp_path / "parent" / "training_state.pt", weights_only=True)
    exported = tmp_path / "exported"  # what `ganinv convert` or data/pretrained/<name>/ holds: G_ema and D
    exported.mkdir()
    for name in ("generator.pt", "discriminator.pt"):
        (exported / name).write_bytes((tmp_path / "parent" / name).read_bytes())
    gan.train(tiny(tmp_path, "still", total_steps=5, init=str(exported), lr=1e-12))
    still = torch.load(tmp_path / "still" / "training_state.pt", weights_only=True)
    assert still["step"] == 5 and still["images_seen"] == 5 * 4  # the step carries on from the record
    # G and G_ema start from the parent's G_ema (not its raw G), D from its D; Adam starts afresh
    for name, source in (("G", "G_ema"), ("G_ema", "G_ema"), ("D", "D")):
        for k, v in parent[source].items():
            torch.testing.assert_close(still[name][k], v, rtol=0, atol=1e-6, msg=f"{name}.{k}")
    assert not all(torch.equal(parent["G"][k], parent["G_ema"][k]) for k in parent["G"])
    assert still["d_opt"]["state"][0]["step"] <= 2 < parent["d_opt"]["state"][0]["step"]
    with pytest.raises(CheckpointError, match="another architecture"):
        gan.train(tiny(tmp_path, "other", total_steps=5, init=str(exported), style_dim=8))
    with pytest.raises(CheckpointError, match="no such checkpoint|no pretrained model"):
        gan.train(tiny(tmp_path, "none", total_steps=5, init=str(tmp_path / "nowhere")))


def test_snapshots_keep_the_checkpoint_of_their_step(tmp_path):
    # a snapshot at step 2 holds what a run stopped at step 2 holds, while the run goes on to 4
    run = tiny(tmp_path, "run", total_steps=4, checkpoint_every=4, snapshot_every=2)
    gan.train(run)
    gan.train(tiny(tmp_path, "short", total_steps=2, checkpoint_every=2))
    snaps = Path(run.out_dir) / "snapshots"
    assert sorted(p.name for p in snaps.iterdir()) == ["step_000002", "step_000004"]
    kept, short = _weights(snaps / "step_000002"), _weights(tmp_path / "short")
    assert kept[3] == short[3] == 2
    for sa, sb in zip(kept[:3], short[:3]):
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)
    assert load_generator(snaps / "step_000002" / "generator.pt").training_record["step"] == 2
    # the last one is the run's final checkpoint; the run's own files moved on past step 2 (and the later
    # checkpoints left the kept step-2 files as they were)
    final = _weights(run.out_dir)
    assert _weights(snaps / "step_000004")[3] == final[3] == 4
    assert not torch.equal(kept[0]["convs.0.conv.weight"], final[0]["convs.0.conv.weight"])
    # a branch can start from a snapshot folder (its training state, not the exported pair)
    branch = tiny(tmp_path, "branch", total_steps=3, init=str(snaps / "step_000002"))
    assert gan.train(branch)["step"] == 3
