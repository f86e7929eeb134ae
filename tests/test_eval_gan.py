"""GAN evaluation: the blur has the right profile, and evaluate_gan's verdict follows its own numbers."""

import math

import torch

from ganinv.data.synthfaces import BINARY_ATTRIBUTES
from ganinv.eval.gan import evaluate_gan, gaussian_blur
from ganinv.models.sfn import SFN, SFNConfig
from ganinv.models.stylegan2 import Generator


def test_gaussian_blur_profile_and_mass():
    x = torch.zeros(1, 3, 15, 15)
    x[:, :, 7, 7] = 1.0
    y = gaussian_blur(x, 1.0)
    torch.testing.assert_close(y.sum(), torch.tensor(3.0))
    # the 1-D profile along a row through the centre is exp(-d^2 / 2) up to normalisation
    row = y[0, 0, 7, 7:11] / y[0, 0, 7, 7]
    want = torch.tensor([math.exp(-(d**2) / 2) for d in range(4)])
    torch.testing.assert_close(row, want, rtol=1e-4, atol=1e-6)
    const = torch.full((2, 3, 8, 8), 0.3)
    torch.testing.assert_close(gaussian_blur(const, 1.0), const)


def test_evaluate_gan_report_is_consistent():
    torch.manual_seed(0)
    G = Generator(32, style_dim=16, n_mlp=2, channel_max=16).eval()
    sfn = SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)).eval()
    r = evaluate_gan(G, sfn, n=48)
    assert set(r["attribute_frequency"]) == set(BINARY_ATTRIBUTES)
    assert all(r[k] >= 0 for k in ("fid_sfn", "fid_sfn_blurred_data", "fid_sfn_data_vs_data"))
    worst = max(abs(v["difference_points"]) for v in r["attribute_frequency"].values())
    assert r["max_attribute_difference_points"] == worst
    assert r["passes"] == (r["fid_sfn"] < r["fid_sfn_blurred_data"] and worst <= 5.0)
    # an untrained generator is far from the data: its FID exceeds that of held-out real faces
    assert r["fid_sfn"] > r["fid_sfn_data_vs_data"]


def test_eval_gan_command_records_how_far_training_got(tmp_path, capsys):
    import json

    from ganinv.checkpoints import save_generator
    from ganinv.cli import main
    from ganinv.models.sfn import save_sfn

    torch.manual_seed(0)
    save_generator(
        tmp_path / "g.pt", Generator(32, style_dim=16, n_mlp=2, channel_max=16), step=7, images_seen=112
    )
    save_generator(tmp_path / "bare.pt", Generator(32, style_dim=16, n_mlp=2, channel_max=16))
    save_sfn(tmp_path / "sfn.pt", SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)))
    for name, want in (("g.pt", {"step": 7, "images_seen": 112}), ("bare.pt", {})):
        out = tmp_path / f"{name}.json"
        main(["eval", "gan", "--checkpoint", str(tmp_path / name), "--sfn", str(tmp_path / "sfn.pt")]
             + ["-n", "16", "--json", str(out)])  # fmt: skip
        r = json.loads(out.read_text())
        assert {k: r[k] for k in ("step", "images_seen") if k in r} == want


def test_training_curves_plot_each_run_in_order_of_images_seen():
    import pytest

    from ganinv.eval.gan import training_curves

    def result(kimg, fid_value, gap):
        return dict(
            images_seen=kimg * 1000,
            fid_sfn=fid_value,
            fid_sfn_blurred_data=0.1,
            max_attribute_difference_points=gap,
        )

    fig = training_curves({"a": [result(20, 0.3, 9.0), result(10, 0.5, 20.0)], "b": [result(5, 0.7, 30.0)]})
    ax_fid, ax_gap = fig.axes
    a_fid, b_fid, bar = ax_fid.get_lines()
    assert list(a_fid.get_xdata()) == [10, 20] and list(a_fid.get_ydata()) == [0.5, 0.3]
    assert list(b_fid.get_ydata()) == [0.7] and list(bar.get_ydata()) == [0.1, 0.1]
    assert list(ax_gap.get_lines()[0].get_ydata()) == [20.0, 9.0]
    with pytest.raises(ValueError, match="without images_seen"):
        training_curves({"c": [{"fid_sfn": 0.2, "checkpoint": "x.pt"}]})
    # past matplotlib's ten default colours, every run still gets its own
    many = training_curves({f"run {i}": [result(i + 1, 0.2, 5.0)] for i in range(12)})
    assert len({line.get_color() for line in many.axes[0].get_lines()[:12]}) == 12


def test_binary_statistics_count_confident_and_undecided_read_outs():
    from ganinv.eval.gan import binary_statistics

    class StubSFN:  # P(attribute) = the image's first pixel, the same for every attribute
        def attributes(self, x):
            return {a: x[:, 0, 0, 0] for a in BINARY_ATTRIBUTES}

    p = torch.tensor([0.0, 0.01, 0.05, 0.3, 0.5, 0.6, 0.95, 0.97, 0.99, 1.0])
    images = p[:, None, None, None].expand(10, 3, 4, 4)
    stats = binary_statistics(StubSFN(), images, batch_size=3)  # batches that do not divide 10
    for a in BINARY_ATTRIBUTES:
        assert stats[a] == {"frequency": 0.5, "confident_on": 0.3, "undecided": 0.5}


class _MeanD(torch.nn.Module):
    """A stand-in discriminator: 10 x the image's mean value, with a minibatch-stddev group like D's."""

    stddev_group = 4

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        if len(x) % self.stddev_group:
            raise ValueError("batch not divisible by the group")
        return self.scale * x.mean([1, 2, 3])[:, None]  # [N, 1]


def test_discriminator_preference_pairs_each_face_with_and_without_the_attribute():
    import numpy as np
    import pytest

    from ganinv.data.synthfaces import edit_factors, render, sample_factors
    from ganinv.eval.gan import discriminator_preference

    pref = discriminator_preference(_MeanD(), 32, n=24, seed=5, batch_size=8)
    factors = sample_factors(5, range(24))
    for a in BINARY_ATTRIBUTES:
        on, off = (render(edit_factors(factors, **{a: v}), 32)[0].mean((1, 2, 3)) for v in (1, 0))
        want = 10 * (on - off)
        assert pref[a]["mean"] == pytest.approx(float(want.mean()), abs=1e-4), a
        assert pref[a]["std"] == pytest.approx(float(np.std(want, ddof=1)), abs=1e-4), a
    # every attribute repaints its part, so D-by-brightness sees a change in the faces
    assert all(p["std"] > 1e-3 for p in pref.values())
    with pytest.raises(ValueError, match="multiple of twice"):
        discriminator_preference(_MeanD(), 32, n=24, batch_size=12)


def test_discriminator_preference_given_holds_attributes_fixed():
    import pytest

    from ganinv.data.synthfaces import edit_factors, render, sample_factors
    from ganinv.eval.gan import discriminator_preference

    pref = discriminator_preference(
        _MeanD(), 32, n=16, seed=5, batch_size=8, given={"glasses": 1, "bangs": 0}
    )
    assert set(pref) == set(BINARY_ATTRIBUTES) - {"glasses", "bangs"}
    factors = edit_factors(sample_factors(5, range(16)), glasses=1, bangs=0)
    on, off = (render(edit_factors(factors, eyes_closed=v), 32)[0].mean((1, 2, 3)) for v in (1, 0))
    assert pref["eyes_closed"]["mean"] == pytest.approx(float(10 * (on - off).mean()), abs=1e-4)
    # behind glasses, closing the eyes changes fewer pixels than on bare faces
    bare = discriminator_preference(
        _MeanD(), 32, n=16, seed=5, batch_size=8, given={"glasses": 0, "bangs": 0}
    )
    assert pref["eyes_closed"]["mean"] != pytest.approx(bare["eyes_closed"]["mean"], abs=1e-4)
    for bad in ({"glases": 1}, {"glasses": 2}):
        with pytest.raises(ValueError, match="given must map binary attributes"):
            discriminator_preference(_MeanD(), 32, n=16, batch_size=8, given=bad)


def test_eval_gan_of_a_runs_raw_generator_with_discriminator_preference(tmp_path):
    import json

    from ganinv.cli import main
    from ganinv.models.sfn import save_sfn
    from ganinv.training import gan

    run = tmp_path / "run"
    gan.train(gan.preset("tiny", out_dir=str(run), total_steps=2, checkpoint_every=2, progress=False))
    save_sfn(tmp_path / "sfn.pt", SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)))
    out = tmp_path / "raw.json"
    main(["eval", "gan", "--checkpoint", str(run), "--weights", "G", "--sfn", str(tmp_path / "sfn.pt")]
         + ["--discriminator", str(run / "discriminator.pt"), "-n", "16", "--json", str(out)])  # fmt: skip
    r = json.loads(out.read_text())
    assert r["weights"] == "G" and r["step"] == 2 and r["images_seen"] == 2 * 4
    assert set(r["discriminator_preference"]) == set(BINARY_ATTRIBUTES)
    assert all(v["std"] > 0 for v in r["discriminator_preference"].values())


def test_eval_gan_preference_given_and_its_bad_input(tmp_path):
    import json

    import pytest

    from ganinv.checkpoints import save_discriminator, save_generator
    from ganinv.cli import main
    from ganinv.models.sfn import save_sfn
    from ganinv.models.stylegan2 import Discriminator

    torch.manual_seed(0)
    save_generator(tmp_path / "g.pt", Generator(32, style_dim=16, n_mlp=2, channel_max=16))
    save_discriminator(tmp_path / "d.pt", Discriminator(32, channel_max=16))
    save_sfn(tmp_path / "sfn.pt", SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)))
    base = [
        "eval",
        "gan",
        "--checkpoint",
        str(tmp_path / "g.pt"),
        "--sfn",
        str(tmp_path / "sfn.pt"),
        "-n",
        "8",
    ]
    out = tmp_path / "r.json"
    main(base + ["--discriminator", str(tmp_path / "d.pt"), "--json", str(out)]
         + ["--preference-given", "glasses=1", "--preference-given", "glasses=0,bangs=1"])  # fmt: skip
    given = json.loads(out.read_text())["discriminator_preference_given"]
    assert set(given) == {"glasses=1", "glasses=0,bangs=1"}
    assert set(given["glasses=1"]) == set(BINARY_ATTRIBUTES) - {"glasses"}
    assert set(given["glasses=0,bangs=1"]) == set(BINARY_ATTRIBUTES) - {"glasses", "bangs"}
    with pytest.raises(SystemExit, match="needs --discriminator"):
        main(base + ["--preference-given", "glasses=1"])
    for bad in ("glases=1", "glasses", "glasses=yes"):
        with pytest.raises(SystemExit, match="expected ATTR=0 or ATTR=1"):
            main(base + ["--discriminator", str(tmp_path / "d.pt"), "--preference-given", bad])


def test_joint_statistics_count_each_combination_of_two_read_outs():
    from ganinv.eval.gan import joint_statistics

    probs = {
        "smiling": torch.tensor([0.9, 0.9, 0.9, 0.1, 0.1, 0.6, 0.2, 0.51], dtype=torch.float64),
        "mouth_open": torch.tensor([0.9, 0.2, 0.2, 0.8, 0.1, 0.1, 0.0, 0.49], dtype=torch.float64),
    }
    joint = joint_statistics(probs, [("smiling", "mouth_open"), ("mouth_open", "smiling")])
    assert joint["smiling+mouth_open"] == {"00": 2 / 8, "01": 1 / 8, "10": 4 / 8, "11": 1 / 8}
    assert joint["mouth_open+smiling"] == {"00": 2 / 8, "01": 4 / 8, "10": 1 / 8, "11": 1 / 8}  # digits swap
    # the cells of a pair partition the images, and their margins are the attribute frequencies
    cells = joint["smiling+mouth_open"]
    assert sum(cells.values()) == 1.0 and cells["10"] + cells["11"] == float(
        (probs["smiling"] > 0.5).double().mean()
    )


def test_evaluate_gan_reports_every_attribute_pair():
    import itertools

    torch.manual_seed(0)
    G = Generator(32, style_dim=16, n_mlp=2, channel_max=16).eval()
    sfn = SFN(SFNConfig(size=32, widths=(4, 8), embed_dim=8)).eval()
    r = evaluate_gan(G, sfn, n=16)
    pairs = r["attribute_pairs"]
    assert set(pairs) == {f"{a}+{b}" for a, b in itertools.combinations(BINARY_ATTRIBUTES, 2)}
    for name, p in pairs.items():
        a = name.split("+")[0]
        gen = p["generated"]
        assert abs(sum(gen.values()) - 1) < 1e-3
        # the pair's margin agrees with the single-attribute table
        assert abs(gen["10"] + gen["11"] - r["attribute_frequency"][a]["generated"]) < 1e-3
        want = max(abs(gen[c] - p["data"][c]) for c in gen)
        assert abs(p["largest_gap_points"] - 100 * want) < 0.05
