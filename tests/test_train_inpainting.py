"""Diverse-inpainting training (ganinv.training.inpainting) and evaluation (ganinv.eval.inpainting): the two
generated-data cases, stage 2, exact resume, the biharmonic / optimisation / no-mixing baselines, the metrics
and the `ganinv inpaint` / `ganinv train inpaint` commands, all on tiny random networks."""

import json
import math

import pytest
import torch

from ganinv.checkpoints import CheckpointError
from ganinv.cli import main as cli_main
from ganinv.data.images import load_image, save_image
from ganinv.data.masks import hole_ratio, save_mask
from ganinv.eval import inpainting as ie
from ganinv.eval.inpainting import (
    Biharmonic,
    InpainterMethod,
    MaskedOptimization,
    biharmonic_inpaint,
    evaluate_methods,
    write_json,
)
from ganinv.models.inpainting import load_inpainter
from ganinv.training import inpainting as ti

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sfn():
    return ti.build_sfn(ti.TINY_RANDOM, seed=0)


def tiny(tmp_path, name: str, **kw) -> ti.InpaintTrainConfig:
    return ti.preset("tiny", out_dir=str(tmp_path / name), progress=False, **kw)


def perturbed_model(G, seed: int = 1):
    """An untrained tiny model whose zero-initialised heads got random weights (non-trivial outputs)."""
    torch.manual_seed(seed)
    model = ti.build_model(ti.preset("tiny"), G)
    with torch.no_grad():
        for m in (model.encoder.heads, model.mixer.fc2, model.skip):
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.2)
    return model.eval()


def _state(path):
    return torch.load(path / "training_state.pt", weights_only=True)


# -- data and the two cases ------------------------------------------------------------------------------


def test_case_a_prob_selects_the_case_and_batches_are_pure_functions_of_the_step(G, tmp_path):
    steps = range(60)
    assert not any(ti.is_case_a(ti.preset("tiny", case_a_prob=0.0), s) for s in steps)
    assert all(ti.is_case_a(ti.preset("tiny", case_a_prob=1.0), s) for s in steps)
    cfg = ti.preset("tiny", hole_min=0.2, hole_max=0.6)
    cases = [ti.is_case_a(cfg, s) for s in steps]
    assert cases == [ti.is_case_a(cfg, s) for s in steps] and 15 < sum(cases) < 45
    a, b = ti.training_batch(G, cfg, 3), ti.training_batch(G, cfg, 3)
    for k in ("x", "mask", "w1", "z2"):
        assert torch.equal(a[k], b[k]), k
    assert a["case_a"] == cases[3]
    assert not torch.equal(a["mask"], ti.training_batch(G, cfg, 4)["mask"])
    assert not torch.equal(a["w1"], ti.training_batch(G, cfg, 3, rank=1, world=2)["w1"])
    ratio = hole_ratio(a["mask"])
    assert a["mask"].shape == (4, 1, 32, 32) and bool(((ratio > 0.2) & (ratio < 0.6)).all())
    torch.testing.assert_close(a["x"], G.synthesis(a["w1"]))  # x = G(w1), const noise
    # the discriminator defaults to the generator's own
    (tmp_path / "generator.pt").touch()
    assert ti.discriminator_spec("", str(tmp_path / "generator.pt")) == str(tmp_path / "generator.pt")
    (tmp_path / "discriminator.pt").touch()
    assert ti.discriminator_spec("", str(tmp_path / "generator.pt")) == str(tmp_path / "discriminator.pt")
    assert ti.discriminator_spec("", "synthfaces64") == "synthfaces64"
    assert ti.discriminator_spec("", ti.TINY_RANDOM) == ti.TINY_RANDOM
    assert ti.discriminator_spec("d.pt", ti.TINY_RANDOM) == "d.pt"


def test_case_b_loss_ignores_hole_pixels_and_case_a_does_not(G, sfn):
    model = perturbed_model(G)
    rec = ti.reconstruction_loss(ti.preset("tiny"), sfn)
    D = ti.build_discriminator(ti.TINY_RANDOM, G)
    batch = ti.training_batch(G, ti.preset("tiny"), 0)
    holes = 1 - batch["mask"]
    changed = dict(batch, x=batch["x"] + holes * torch.randn_like(batch["x"]))
    for case_a in (False, True):
        with torch.no_grad():
            a = ti.case_losses(model, rec, dict(batch, case_a=case_a), D=D, adv_weight=0.1)
            b = ti.case_losses(model, rec, dict(changed, case_a=case_a), D=D, adv_weight=0.1)
        if case_a:
            assert a["mse"] < b["mse"] and a["adv"] == 0  # all pixels count; no adversarial term
        else:
            for k in ("mse", "lpips", "id", "rec", "adv", "total"):
                assert torch.equal(a[k], b[k]), k
            assert a["adv"] > 0 and torch.equal(a["total"], a["rec"] + 0.1 * a["adv"])
    # case A feeds the original latent: with a pure pass-through mixer (gate 0) it reproduces x exactly
    with torch.no_grad():
        model.mixer.fc2.bias[:, : model.mixer.n_gate] = -1e4
        out = ti.case_losses(model, rec, dict(batch, case_a=True))
    assert float(out["mse"]) < 1e-10


def test_tiny_stage1_run_lowers_the_masked_reconstruction_loss(tmp_path, G, sfn):
    cfg = tiny(tmp_path, "run", total_steps=20, checkpoint_every=20, batch_size=8, lr=3e-3)
    torch.manual_seed(cfg.seed)
    before = ti.build_model(cfg, G).eval()
    result = ti.train(cfg)
    after = load_inpainter(tmp_path / "run" / "inpainter.pt")
    assert result["step"] == 20 and {h["case_a"] for h in result["history"]} == {0.0, 1.0}
    rec = ti.reconstruction_loss(cfg, sfn)
    fixed = ti.training_batch(G, ti.preset("tiny", batch_size=32), 10_000)  # never a training batch
    with torch.no_grad():
        loss_before = ti.case_losses(before, rec, dict(fixed, case_a=False))
        loss_after = ti.case_losses(after, rec, dict(fixed, case_a=False))
    assert float(loss_after["mse"]) < 0.97 * float(loss_before["mse"])  # masked MSE
    assert float(loss_after["rec"]) < 0.9 * float(loss_before["rec"])  # masked MSE + LPIPS-SFN + ID-SFN


# -- stage 2, resume -------------------------------------------------------------------------------------


def test_stage2_trains_only_the_skip_encoder(tmp_path):
    ti.train(tiny(tmp_path, "s1", total_steps=2))
    init = tmp_path / "s1" / "inpainter.pt"
    ti.train(tiny(tmp_path, "s2", stage=2, init=str(init), total_steps=3, case_a_prob=0.5))
    a = torch.load(init, weights_only=True)
    b = torch.load(tmp_path / "s2" / "inpainter.pt", weights_only=True)
    assert b["stage"] == 2 and a["state_dict"].keys() == b["state_dict"].keys()
    changed = {k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])}
    assert changed and all(k.startswith("skip.") for k in changed), sorted(changed)
    with pytest.raises(ValueError, match="stage 2 needs init"):
        ti.train(tiny(tmp_path, "bad", stage=2))


def test_stage2_can_fuse_at_other_resolutions_and_keeps_stage1(tmp_path, G):
    ti.train(tiny(tmp_path, "s1", total_steps=2))
    init = tmp_path / "s1" / "inpainter.pt"
    ti.train(tiny(tmp_path, "s2", stage=2, init=str(init), total_steps=2, f_res="8,16,32", fuse_mask="soft"))
    model = load_inpainter(tmp_path / "s2" / "inpainter.pt")
    assert model.cfg.f_res == (8, 16, 32) and model.cfg.fuse_mask == "soft"
    assert model.cfg.f_channels == tuple(G.channels[r] for r in (8, 16, 32))
    assert set(model.skip.heads) == {"8", "16", "32"}
    a = torch.load(init, weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "s2" / "inpainter.pt", weights_only=True)["state_dict"]
    first = [k for k in a if not k.startswith("skip.")]
    assert first and all(torch.equal(a[k], b[k]) for k in first)  # encoder and mixer: the stage-1 weights
    x, mask = torch.rand(2, 3, 32, 32) * 2 - 1, torch.ones(2, 1, 32, 32)
    mask[..., 8:24, 8:24] = 0
    with torch.no_grad():  # trained: the 32 px fusion changes the known pixels of the output
        out = model(x, mask, z=torch.randn(2, G.style_dim), stage=2)
    assert set(out.delta) == {8, 16, 32} and out.delta[32].abs().sum() > 0
    for bad, match in ((dict(f_res="8,x"), "comma-separated"), (dict(f_res="12"), "powers of two"),
                       (dict(fuse_mask="blur"), "fuse_mask")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ti.train(tiny(tmp_path, "bad", stage=2, init=str(init), **bad))
    with pytest.raises(ValueError, match="stage-2 settings"):
        ti.train(tiny(tmp_path, "bad1", f_res="16"))
    # --f-res on a stage-2 file: stage 2 from scratch (fresh skip encoder), even at the same resolutions
    again = ti.build_model(ti.preset("tiny", stage=2, init=str(tmp_path / "s2"), f_res="8,16,32"), G)
    assert all(torch.equal(again.state_dict()[k], b[k]) for k in first)
    last = "skip.heads.32.2.weight"  # the zero-initialised output conv of a fresh head
    assert b[last].abs().sum() > 0 and again.state_dict()[last].abs().sum() == 0
    kept = ti.build_model(ti.preset("tiny", stage=2, init=str(tmp_path / "s2")), G)  # no --f-res: continue
    assert torch.equal(kept.state_dict()[last], b[last].float())


def test_seam_loss_penalises_steps_at_the_hole_border(G, sfn):
    model = perturbed_model(G)
    rec = ti.reconstruction_loss(ti.preset("tiny"), sfn)
    batch = dict(ti.training_batch(G, ti.preset("tiny"), 0), case_a=False)
    off = ti.case_losses(model, rec, batch)
    on = ti.case_losses(model, rec, batch, seam_weight=2.0)
    assert off["seam"] == 0 and on["seam"] > 0
    torch.testing.assert_close(on["total"], on["rec"] + 2.0 * on["seam"])
    on["seam"].backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)  # the loss reaches the networks


def test_resume_continues_exactly(tmp_path):
    ti.train(tiny(tmp_path, "straight", total_steps=4))
    ti.train(tiny(tmp_path, "split", total_steps=2))
    ti.train(tiny(tmp_path, "split", total_steps=4, resume=True))
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "split")
    assert a["step"] == b["step"] == 4 and a["d_steps"] == b["d_steps"] > 0  # both cases were trained
    for part in ("model", "D"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=0, msg=f"{part}.{k}")
    with pytest.raises(CheckpointError, match="different config"):
        ti.train(tiny(tmp_path, "split", total_steps=6, resume=True, case_a_prob=0.3))


# -- baselines and evaluation ----------------------------------------------------------------------------


def test_biharmonic_reproduces_linear_ramps_and_keeps_known_pixels():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    ramp = torch.stack([0.3 * xx + 0.2 * yy, 0.1 - 0.5 * xx, 0.7 * yy - 0.2 * xx])[None]
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 5:20, 8:30] = 0
    mask[..., :4, :6] = 0  # a hole in the corner too
    out = biharmonic_inpaint(ramp * mask, mask)  # the hole of the input is 0
    torch.testing.assert_close(out, ramp, atol=1e-5, rtol=0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = biharmonic_inpaint(x, mask)
    assert torch.equal(out * mask, x * mask)

    def dxx(u):
        return u[..., 2:] - 2 * u[..., 1:-1] + u[..., :-2]

    inside = out[..., 8:17, 12:26]  # smooth: far smaller second differences than the known noise
    assert dxx(inside).abs().max() < 0.25 * dxx(x).abs().mean()
    # cubic polynomials are biharmonic (their discrete 13-point biharmonic vanishes too): exact inside the
    # image when the hole keeps 2 px from the border, where the thin-plate energy is the full stencil
    inner = torch.ones(1, 1, 32, 32)
    inner[..., 6:20, 8:26] = 0
    cubic = (xx**3 - 3 * xx * yy**2 + xx**2 * yy)[None, None]
    torch.testing.assert_close(biharmonic_inpaint(cubic * inner, inner), cubic, atol=1e-5, rtol=0)


def test_evaluation_metrics_and_diversity_of_deterministic_and_mixing_methods(tmp_path, G, sfn):
    model = perturbed_model(G)
    methods = {
        "mixing": InpainterMethod(model),
        "no_mixing": InpainterMethod(model, mixing=False),
        "optimisation": MaskedOptimization(G, steps=3, sfn=sfn),
        "biharmonic": Biharmonic(),
    }
    results = evaluate_methods(methods, G, sfn, n=6, buckets=[1, (0.5, 0.7)], samples=5, batch_size=4)
    keys = {"hole_ratio", "fid_sfn", "u_ids_sfn", "p_ids_sfn", "psnr_unerased", "lpips_sfn_unerased",
            "diversity_lpips_sfn", "seam_excess", "seconds_per_image"}  # fmt: skip
    for name, res in results.items():
        assert res["n"] == 6 and res["samples"] == 5 and list(res["buckets"]) == ["h1", "0.50-0.70"]
        for label, values in res["buckets"].items():
            assert set(values) == keys, (name, label)
            assert all(math.isfinite(v) for v in values.values()), (name, label, values)
            assert 0 <= values["u_ids_sfn"] <= 1 and 0 <= values["p_ids_sfn"] <= 1
    for name in ("no_mixing", "optimisation", "biharmonic"):
        assert all(v["diversity_lpips_sfn"] == 0 for v in results[name]["buckets"].values()), name
    assert all(v["diversity_lpips_sfn"] > 1e-4 for v in results["mixing"]["buckets"].values())
    assert all(v["psnr_unerased"] == 100 for v in results["biharmonic"]["buckets"].values())
    assert 0.2 < results["mixing"]["buckets"]["h1"]["hole_ratio"] < 0.4
    write_json(results, tmp_path / "eval.json")
    assert json.loads((tmp_path / "eval.json").read_text()) == results
    with pytest.raises(ValueError, match="samples >= 2"):
        evaluate_methods({"m": model}, G, sfn, n=4, samples=1)


def test_seamless_rows_share_raw_outputs_and_lower_the_seams(G, sfn):
    model = perturbed_model(G)
    methods = {"hard": InpainterMethod(model), "seamless": InpainterMethod(model, seamless=True)}
    res = evaluate_methods(methods, G, sfn, n=4, buckets=[2], samples=2, batch_size=4)
    hard, soft = res["hard"]["buckets"]["h2"], res["seamless"]["buckets"]["h2"]
    assert hard["psnr_unerased"] == soft["psnr_unerased"]  # the same raw outputs
    assert soft["seam_excess"] < 0.5 * hard["seam_excess"]
    assert ie.build_method(ie.parse_entry("s=inpainter-seamless@m")[1], G, sfn, {"m": model}).seamless


def test_seam_excess_known_answers():
    x = torch.zeros(2, 3, 16, 16)
    x[:, :, :, 8:] = 0.6  # the original has its own vertical edge at column 8
    mask = torch.ones(2, 1, 16, 16)
    mask[:, :, 4:12, 8:12] = 0  # a hole whose left border lies on that edge
    assert torch.allclose(ie.seam_excess(x, x, mask), torch.zeros(2))  # the original: no excess
    done = x.clone()
    done[:, :, 4:12, 8:12] -= 0.6  # hole filled with the left side's colour: the edge moves into the hole
    # border pairs: 8 left (step 0.6 -> 0), 8 right (0 -> 0.6), 4 + 4 top/bottom (0 -> 0.6): (-4.8 + 9.6) / 24
    assert torch.allclose(ie.seam_excess(done, x, mask), torch.full((2,), 0.2), atol=1e-6)
    done[1] = x[1]
    done[1, :, 4:12, 8:12] += 0.3  # a brighter patch: every border pair gains a 0.3 step except the left
    assert ie.seam_excess(done, x, mask)[1] > 0.2
    assert torch.equal(ie.seam_excess(x + 1, x, torch.ones(2, 1, 16, 16)), torch.zeros(2))  # no border


def test_benchmark_entries_and_errors():
    name, e = ie.parse_entry("only A=inpainter-s1@runs/a/inpainter.pt")
    assert name == "only A" and e.method == "inpainter-s1" and e.model == "runs/a/inpainter.pt"
    assert ie.parse_entry("b=biharmonic")[1].model is None
    assert ie.parse_entry("m=no-mixing", model="x.pt")[1].model == "x.pt"
    for bad, match in (("noequals", "NAME=METHOD"), ("a=unknown", "unknown method"),
                       ("a=optim@model.pt", "takes no model")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ie.parse_entry(bad)
    defaults = ie.default_entries("m.pt", optim_steps=7, optim_n=3)
    assert {e.method for e in defaults.values()} == set(ie.METHODS)
    optim = next(e for e in defaults.values() if e.method == "optim")
    assert optim.options == {"steps": 7} and optim.n == 3


# -- command line ----------------------------------------------------------------------------------------


def test_cli_train_and_inpaint_with_clear_errors(tmp_path, G, capsys):
    run = tmp_path / "run"
    cli_main(["train", "inpaint", "--preset", "tiny", "--total-steps", "2", "--out-dir", str(run),
              "--progress", "false", "--eval-n", "4"])  # fmt: skip
    ev = json.loads((run / "eval.json").read_text())
    assert ev["stage"] == 1 and ev["step"] == 2 and list(ev["buckets"]) == ["h0", "h1", "h2", "h3", "h4"]
    image = tmp_path / "face.png"
    save_image(G(torch.randn(1, 16)).clamp(-1, 1)[0], image)
    mask = torch.ones(1, 32, 32)
    mask[:, 8:24, 4:20] = 0
    save_mask(mask, tmp_path / "mask.png")
    out = tmp_path / "out"
    args = ["inpaint", str(image), "--mask", str(tmp_path / "mask.png"), "-n", "3", "--out", str(out),
            "--model", str(run / "inpainter.pt"), "--device", "cpu"]  # fmt: skip
    cli_main(args)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["erased.png", "grid.png", "result_00.png", "result_01.png", "result_02.png"]
    results = [load_image(out / f"result_{i:02d}.png") for i in range(3)]
    assert not torch.equal(results[0], results[1])  # diverse
    assert "wrote 3 completions" in capsys.readouterr().out
    # default: seamless paste, the known pixels are the image's; --paste none: raw outputs, which are not
    x, keep = load_image(image), mask.bool().expand(3, -1, -1)
    assert (results[0] - x)[keep].abs().max() <= 1.5 / 255

    def yellow(img: torch.Tensor) -> int:
        return int(((img[0] > 0.95) & (img[1] > 0.95) & (img[2] < -0.95)).sum())

    plain = yellow(load_image(out / "grid.png"))
    cli_main([*args, "--paste", "none", "--outline"])
    raw = load_image(out / "result_00.png")
    assert (raw - x)[keep].abs().max() > 0.05 and not torch.equal(raw, results[0])
    # --outline: a yellow ring around the 16 x 16 hole on each of the 3 grid images, not in the result files
    assert yellow(load_image(out / "grid.png")) >= plain + 3 * 4 * 15 and yellow(raw) < 4 * 15
    (tmp_path / "bad.png").write_bytes(b"not an image")
    save_image(torch.zeros(3, 20, 32), tmp_path / "wide.png")  # not square
    for bad, what in (("bad.png", "cannot read"), ("wide.png", "not square")):
        with pytest.raises(SystemExit) as err:
            cli_main([*args[:2], "--mask", str(tmp_path / bad), *args[4:]])
        assert str(err.value).startswith("ganinv inpaint: error:") and what in str(err.value), err.value
    with pytest.raises(SystemExit) as err:
        cli_main(["inpaint", str(tmp_path / "bad.png"), *args[2:]])
    assert "bad.png" in str(err.value)
    # --edit: every completion moved along a direction of the generator (here a made-up one)
    from ganinv.editing import Direction, save_directions

    model = load_inpainter(run / "inpainter.pt")
    assert model.generator_ref == str(run / "generator.pt")  # the recorded generator, resolved beside it
    vec = torch.nn.functional.normalize(torch.randn(model.cfg.style_dim), dim=0)
    save_directions(tmp_path / "dirs.pt", {"smiling": Direction(vec, "interfacegan", std=1.0)},
                    generator_config=model.G.config)  # fmt: skip
    edit_args = [*args, "--directions", str(tmp_path / "dirs.pt"), "--edit"]
    cli_main([*edit_args, "smiling=0"])
    unedited = load_image(out / "edited_grid.png")
    cli_main([*edit_args, "smiling=8"])
    assert "smiling +8 sigma" in capsys.readouterr().out
    assert torch.allclose(unedited, load_image(out / "grid.png"), atol=2 / 255)  # strength 0: the results
    assert (load_image(out / "edited_grid.png") - unedited).abs().mean() > 0.01
    for bad, what in (
        ("smiling", "ATTRIBUTE=SIGMAS"),
        ("smiling=x", "ATTRIBUTE=SIGMAS"),
        ("beard=2", "no direction"),
    ):
        with pytest.raises(SystemExit) as err:
            cli_main([*edit_args, bad])
        assert what in str(err.value), err.value


def test_cli_eval_inpainting_rows_add_table_and_errors(tmp_path, sfn, capsys):
    from ganinv.models.sfn import save_sfn

    run = tmp_path / "run"
    cli_main(["train", "inpaint", "--preset", "tiny", "--total-steps", "1", "--out-dir", str(run),
              "--progress", "false"])  # fmt: skip
    save_sfn(tmp_path / "sfn.pt", sfn, half=False)
    out = tmp_path / "05.json"
    common = ["eval", "inpainting", "--generator", str(run / "generator.pt"), "--model", str(run),
              "--sfn", str(tmp_path / "sfn.pt"), "-n", "4", "--samples", "2", "--buckets", "h1", "h3",
              "--optim-n", "2", "--optim-steps", "2", "--device", "cpu", "--json", str(out)]  # fmt: skip
    cli_main(
        [*common, "--entry", "ours=inpainter", "--entry", "opt=optim", "--figure", str(tmp_path / "f.png")]
    )
    res = json.loads(out.read_text())
    assert list(res["entries"]) == ["ours", "opt"] and res["n"] == 4 and res["samples"] == 2
    assert res["entries"]["opt"]["n"] == 2 and res["entries"]["ours"]["n"] == 4
    ours = res["entries"]["ours"]
    assert list(ours["buckets"]) == ["h1", "h3"]
    mean_fid = (ours["buckets"]["h1"]["fid_sfn"] + ours["buckets"]["h3"]["fid_sfn"]) / 2
    assert ours["mean"]["fid_sfn"] == pytest.approx(mean_fid)
    assert (tmp_path / "f.png").stat().st_size > 1000
    table = capsys.readouterr().out
    assert "| ours | 4 |" in table and "| opt | 2 |" in table and "seam_excess" in table
    cli_main(
        [*common, "--entry", "s1=inpainter-s1", "--entry", "s2=inpainter", "--add", "--compare", "s1", "s2"]
    )
    res = json.loads(out.read_text())
    assert list(res["entries"]) == ["ours", "opt", "s1", "s2"]
    diff = res["comparisons"]["s2 vs s1"]  # paired per-image differences: their mean is the rows' difference
    for key in ie.PER_IMAGE_KEYS:
        rows = res["entries"]
        want = rows["s2"]["mean"][key] - rows["s1"]["mean"][key]
        assert diff[key]["mean"] == pytest.approx(want, abs=1e-5), key
        assert diff[key]["lo"] <= diff[key]["mean"] <= diff[key]["hi"] and diff[key]["n"] == 4
    with pytest.raises(SystemExit, match="no row named"):
        cli_main([*common, "--entry", "s1=inpainter-s1", "--compare", "s1", "s3"])
    cli_main(
        [*common, "--entry", "mix=no-mixing", "--add", "--compare", "ours", "mix"]
    )  # a stored row + a new one
    res = json.loads(out.read_text())
    assert set(res["comparisons"]) == {"s2 vs s1", "mix vs ours"}
    assert res["comparisons"]["mix vs ours"]["diversity_lpips_sfn"]["hi"] < 0  # no mixing: less diverse
    with pytest.raises(SystemExit) as err:  # other images: refused
        cli_main([*common[:-2], "-n", "3", "--json", str(out), "--entry", "b=biharmonic", "--add"])
    assert "cannot add rows scored differently" in str(err.value) and "n 4 vs 3" in str(err.value)
    with pytest.raises(SystemExit) as err:
        cli_main([*common, "--entry", "x=nonsense"])
    assert "unknown method" in str(err.value)


def test_exact_copies_show_a_dash_not_100_db():
    import matplotlib.pyplot as plt

    def row(psnr, lpips):
        values = {"fid_sfn": 0.2, "psnr_unerased": psnr, "lpips_sfn_unerased": lpips, "seam_excess": 0.01,
                  "diversity_lpips_sfn": 0.5, "hole_ratio": 0.5}  # fmt: skip
        return {"n": 4, "mean": values, "buckets": {"h2": values}}

    result = {"entries": {"model": row(23.0, 0.4), "biharmonic": row(ie.PSNR_CAP, 0.0)}}
    keys = ("psnr_unerased", "lpips_sfn_unerased", "seam_excess")
    table = ie.markdown_table(result, keys).splitlines()
    assert table[2] == "| model | 4 | **23** | **0.4** | **0.01** |"  # the copy takes no part in the ranking
    assert table[3] == "| biharmonic | 4 | — | — | **0.01** |"
    fig = ie.bucket_figure(result, keys=keys)
    psnr_lines = {line.get_label() for line in fig.axes[0].get_lines()}
    assert psnr_lines == {"model"} and len(fig.axes[2].get_lines()) == 2  # left out, not drawn at 100 dB
    plt.close(fig)
