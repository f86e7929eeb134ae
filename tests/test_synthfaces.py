"""SynthFaces: determinism, shapes, part labels, ground-truth edits, factor statistics, API errors."""

import json

import numpy as np
import pytest
import torch

from ganinv.data import synthfaces as sf

SEED = 7


@pytest.fixture(scope="module")
def batch64():
    return sf.synthfaces(SEED, np.arange(96), 64)


def test_factor_table_is_consistent():
    assert len(sf.FACTORS) >= 12
    assert len(set(sf.FACTOR_NAMES)) == len(sf.FACTORS)
    for name in ("smiling", "glasses", "beard", "eyes_closed", "mouth_open", "bangs"):
        assert name in sf.BINARY_ATTRIBUTES
    for name in ("yaw", "face_width", "skin_tone", "hair_color", "age", "eye_color", "background"):
        assert name in sf.CONTINUOUS_FACTORS
    assert sf.CATEGORICAL_FACTORS == ("hair_style",)
    assert set(sf.BINARY_ATTRIBUTES + sf.CONTINUOUS_FACTORS + sf.CATEGORICAL_FACTORS) == set(sf.FACTOR_NAMES)
    for f in sf.FACTORS:
        assert f.kind in ("binary", "continuous", "categorical") and f.description
        if f.kind == "categorical":
            assert len(f.probs) == f.num_classes and abs(sum(f.probs) - 1) < 1e-9
    assert sf.PARTS == ("background", "skin", "hair", "eyes", "brows", "mouth", "glasses", "beard")


def test_same_index_gives_same_face_whatever_the_batch():
    a_img, a_parts = sf.render(sf.sample_factors(SEED, [5, 9]), 64)
    b_img, b_parts = sf.render(sf.sample_factors(SEED, [9]), 64)
    np.testing.assert_array_equal(a_img[1], b_img[0])
    np.testing.assert_array_equal(a_parts[1], b_parts[0])
    # a large shuffled batch spanning several render chunks, with index 9 somewhere inside
    idx = np.random.default_rng(0).permutation(np.arange(40))
    c_img, c_parts = sf.render(sf.sample_factors(SEED, idx), 64)
    k = int(np.flatnonzero(idx == 9)[0])
    np.testing.assert_array_equal(c_img[k], b_img[0])
    np.testing.assert_array_equal(c_parts[k], b_parts[0])
    # and the factors themselves
    f = sf.sample_factors(SEED, idx)
    g = sf.sample_factors(SEED, [9])
    for name in sf.FACTOR_NAMES:
        assert f[name][k] == g[name][0]


def test_seeds_and_indices_differ():
    a = sf.synthfaces(0, [3], 64)["image"]
    b = sf.synthfaces(1, [3], 64)["image"]
    c = sf.synthfaces(0, [4], 64)["image"]
    assert np.abs(a - b).mean() > 0.02
    assert np.abs(a - c).mean() > 0.02
    fa, fb = sf.sample_factors(0, np.arange(200)), sf.sample_factors(1, np.arange(200))
    assert not np.allclose(fa["yaw"], fb["yaw"])


@pytest.mark.parametrize("size", [32, 64, 256])
def test_shapes_ranges_dtypes(size):
    n = 3 if size == 256 else 8
    out = sf.synthfaces(1, np.arange(n), size)
    img, parts = out["image"], out["parts"]
    assert img.shape == (n, 3, size, size) and img.dtype == np.float32
    assert parts.shape == (n, size, size) and parts.dtype == np.uint8
    assert img.min() >= -1 and img.max() <= 1
    assert img.std() > 0.2  # not a blank canvas
    assert parts.max() < len(sf.PARTS)
    for name, v in out["factors"].items():
        assert len(v) == n, name


def test_render_sizes_agree_after_downsampling():
    # the same face at 256 and 64 (box-downsampled) should look alike: geometry is size-independent
    f = sf.sample_factors(3, np.arange(4))
    big, _ = sf.render(f, 256)
    small, _ = sf.render(f, 64)
    down = big.reshape(4, 3, 64, 4, 64, 4).mean(axis=(3, 5))
    assert np.abs(down - small).mean() < 0.03


def test_part_windows_are_conservative():
    # parts are painted only inside fixed windows; painting them over the whole image must not
    # change a single pixel, even for extreme factor values
    rng = np.random.default_rng(1)
    f = sf.sample_factors(11, np.arange(48))
    for fac in sf.FACTORS:
        if fac.kind == "continuous":
            f[fac.name] = np.where(rng.random(48) < 0.5, fac.low, fac.high).astype(np.float32)
    for size in (64, 128):
        a, pa = sf.render(f, size)
        try:
            sf.canvas._FULL_WINDOWS = True
            b, pb = sf.render(f, size)
        finally:
            sf.canvas._FULL_WINDOWS = False
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(pa, pb)


def test_parts_follow_attributes(batch64):
    parts, f = batch64["parts"], batch64["factors"]
    present = np.stack([(parts == k).any(axis=(1, 2)) for k in range(len(sf.PARTS))], 1)
    for always in ("background", "skin", "hair", "eyes", "brows", "mouth"):
        assert present[:, sf.PARTS.index(always)].all(), always
    np.testing.assert_array_equal(present[:, sf.GLASSES], f["glasses"] == 1)
    np.testing.assert_array_equal(present[:, sf.BEARD], f["beard"] == 1)
    # reasonable areas: skin is the largest face part, eyes and mouth are small but not tiny
    area = np.stack([(parts == k).mean(axis=(1, 2)) for k in range(len(sf.PARTS))], 1)
    assert 0.15 < area[:, sf.SKIN].mean() < 0.5
    assert 0.003 < area[:, sf.EYES].mean() < 0.05
    assert 0.002 < area[:, sf.MOUTH].mean() < 0.05
    # parts sit where they should: eyes above the mouth
    rows = np.arange(64)[None, :, None]
    eye_y = ((parts == sf.EYES) * rows).sum((1, 2)) / (parts == sf.EYES).sum((1, 2))
    mouth_y = ((parts == sf.MOUTH) * rows).sum((1, 2)) / (parts == sf.MOUTH).sum((1, 2))
    assert (eye_y < mouth_y - 10).all()


def _changed_rows(a, b):
    diff = np.abs(a - b).max(axis=(0, 1, 3)) if a.ndim == 4 else np.abs(a - b).max(axis=(0, 2))
    return np.flatnonzero(diff > 0)


def _rows(y0, y1, size=64):
    """Pixel rows covering normalised y in [y0, y1]."""
    return int(np.floor((y0 + 1) * size / 2)), int(np.ceil((y1 + 1) * size / 2))


def test_edit_smiling_only_touches_the_mouth():
    f = sf.sample_factors(SEED, np.arange(16))
    a, pa = sf.render(sf.edit_factors(f, smiling=0), 64)
    b, pb = sf.render(sf.edit_factors(f, smiling=1), 64)
    rows = _changed_rows(a, b)
    lo, hi = _rows(sf.MOUTH_Y - 0.2, sf.MOUTH_Y + 0.2)
    assert rows.size > 0 and rows.min() >= lo and rows.max() <= hi
    # the mouth region changes visibly for every face
    r0, r1 = _rows(sf.MOUTH_Y - 0.08, sf.MOUTH_Y + 0.08)
    per_face = np.abs(a - b)[:, :, r0:r1].mean(axis=(1, 2, 3))
    assert (per_face > 0.005).all()
    # labels outside the mouth band are untouched
    np.testing.assert_array_equal(pa[:, :lo], pb[:, :lo])


def test_edit_glasses_and_eyes_stay_local():
    f = sf.sample_factors(SEED, np.arange(16))
    lo, hi = _rows(sf.EYE_Y - 0.25, sf.EYE_Y + 0.25)
    for name in ("glasses", "eyes_closed"):
        a, _ = sf.render(sf.edit_factors(f, **{name: 0}), 64)
        b, _ = sf.render(sf.edit_factors(f, **{name: 1}), 64)
        rows = _changed_rows(a, b)
        assert rows.size > 0 and rows.min() >= lo and rows.max() <= hi, name
        assert (np.abs(a - b).mean(axis=(1, 2, 3)) > 0.002).all(), name


def test_edit_factors_validates_and_copies():
    f = sf.sample_factors(0, np.arange(4))
    before = {k: v.copy() for k, v in f.items()}
    g = sf.edit_factors(f, smiling=1, yaw=np.array([0, 0.5, -0.5, 1.0]))
    assert (g["smiling"] == 1).all() and g["yaw"].dtype == np.float32
    np.testing.assert_array_equal(g["yaw"], np.float32([0, 0.5, -0.5, 1.0]))
    for k in f:  # the input is not modified
        np.testing.assert_array_equal(f[k], before[k])
    np.testing.assert_array_equal(g["age"], f["age"])
    with pytest.raises(ValueError, match="unknown factors"):
        sf.edit_factors(f, smile=1)
    with pytest.raises(ValueError, match="yaw"):
        sf.edit_factors(f, yaw=2.0)
    with pytest.raises(ValueError, match="smiling"):
        sf.edit_factors(f, smiling=0.5)
    with pytest.raises(ValueError, match="hair_style"):
        sf.edit_factors(f, hair_style=7)
    with pytest.raises(ValueError, match="one value per sample"):
        sf.edit_factors(f, age=[0.1, 0.2])


def test_binary_attribute_frequencies_and_independence():
    f = sf.sample_factors(123, np.arange(2000))
    for fac in sf.FACTORS:
        v = f[fac.name]
        if fac.kind == "binary":
            assert 0.25 <= fac.prob <= 0.5
            assert abs(v.mean() - fac.prob) < 0.04, (fac.name, v.mean())
        elif fac.kind == "continuous":
            assert v.min() >= fac.low and v.max() <= fac.high
            assert abs(v.mean() - (fac.low + fac.high) / 2) < 0.05 * (fac.high - fac.low)
        else:
            freq = np.bincount(v, minlength=fac.num_classes) / len(v)
            np.testing.assert_allclose(freq, fac.probs, atol=0.04)
    binary = np.stack([f[n] for n in sf.BINARY_ATTRIBUTES], 1).astype(float)
    corr = np.corrcoef(binary.T)
    off_diag = corr[~np.eye(len(sf.BINARY_ATTRIBUTES), dtype=bool)]
    assert np.abs(off_diag).max() < 0.08


def test_observable_masks_eye_color():
    f = sf.sample_factors(0, np.arange(50))
    obs = sf.observable(f)
    np.testing.assert_array_equal(obs["eye_color"], f["eyes_closed"] == 0)
    assert obs["smiling"].all()
    # eye colour really is invisible with closed eyes, and visible with open eyes
    closed = sf.edit_factors(f, eyes_closed=1)
    a, _ = sf.render(sf.edit_factors(closed, eye_color=0.0), 64)
    b, _ = sf.render(sf.edit_factors(closed, eye_color=1.0), 64)
    np.testing.assert_array_equal(a, b)
    opened = sf.edit_factors(f, eyes_closed=0)
    a, _ = sf.render(sf.edit_factors(opened, eye_color=0.0), 64)
    b, _ = sf.render(sf.edit_factors(opened, eye_color=1.0), 64)
    assert (np.abs(a - b).sum(axis=(1, 2, 3)) > 1).all()


def test_factor_array_round_trip():
    f = sf.sample_factors(5, np.arange(10))
    arr = sf.factors_to_array(f)
    assert arr.shape == (10, len(sf.FACTORS)) and arr.dtype == np.float32
    g = sf.factors_from_array(arr)
    for name in sf.FACTOR_NAMES:
        np.testing.assert_array_equal(g[name], f[name])


@pytest.mark.parametrize("size", [0, 16, 48, 100, 512, 64.0, "64", True])
def test_invalid_sizes_raise(size):
    f = sf.sample_factors(0, [0])
    with pytest.raises(ValueError, match="size"):
        sf.render(f, size)
    with pytest.raises(ValueError, match="size"):
        sf.SynthFaces(size=size)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="seed"):
        sf.sample_factors(-1, [0])
    with pytest.raises(ValueError, match="non-negative"):
        sf.sample_factors(0, [-3])
    with pytest.raises(ValueError, match="integers"):
        sf.sample_factors(0, [0.5])
    f = sf.sample_factors(0, [0, 1])
    del f["age"]
    with pytest.raises(ValueError, match="missing"):
        sf.render(f)
    with pytest.raises(ValueError, match="length"):
        sf.SynthFaces(length=-1)
    with pytest.raises(ValueError, match="offset"):
        sf.SynthFaces(offset=1.5)


def test_dataset_items_and_batches():
    ds = sf.SynthFaces(size=32, seed=SEED, length=10, offset=5)
    assert len(ds) == 10
    item = ds[2]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["parts"].shape == (32, 32) and item["parts"].dtype == torch.long
    assert item["factors"].shape == (len(sf.FACTORS),) and item["factors"].dtype == torch.float32
    # item i is sample offset + i of the seed
    direct = sf.synthfaces(SEED, [7], 32)
    np.testing.assert_array_equal(item["image"].numpy(), direct["image"][0])
    batch = ds.get_batch([2, 0, 9])
    assert batch["image"].shape == (3, 3, 32, 32)
    torch.testing.assert_close(batch["image"][0], item["image"], rtol=0, atol=0)
    torch.testing.assert_close(batch["factors"][0], item["factors"], rtol=0, atol=0)
    torch.testing.assert_close(ds[-1]["image"], ds[9]["image"], rtol=0, atol=0)
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(IndexError):
        ds.get_batch([3, 10])
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    first = next(iter(loader))
    assert first["image"].shape == (4, 3, 32, 32)
    expected = ds.get_batch([0, 1, 2, 3])
    for k in ("image", "parts", "factors"):
        torch.testing.assert_close(first[k], expected[k], rtol=0, atol=0)


def test_figures(tmp_path):
    from PIL import Image

    p = sf.save_sample_grid(tmp_path / "grid.png", seed=0, n=8, size=32, nrow=4)
    im = Image.open(p)
    assert im.size == (4 * 34 + 2, 2 * 34 + 2)
    p = sf.save_attribute_sheet(tmp_path / "attrs.png", size=32)
    assert Image.open(p).size[1] > len(sf.BINARY_ATTRIBUTES) * 32


def test_benchmark_runs_and_writes_json(tmp_path):
    from ganinv.bench import synthfaces as bench

    out = bench.run(str(tmp_path / "b.json"), size=32, batch=8, seconds=0.05, extra_sizes=(64,))
    assert out["benchmark"] == "synthfaces"
    assert [r["size"] for r in out["results"]] == [32, 64]
    assert all(r["images_per_s"] > 0 for r in out["results"])
    assert json.loads((tmp_path / "b.json").read_text()) == out
