"""Masks: free-form (CoModGAN) generator, hole-ratio buckets, semantic masks, validation and files."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganinv.data import synthfaces as sf
from ganinv.data.masks import (
    HOLE_BUCKETS,
    MASK_KINDS,
    MaskError,
    bucket_index,
    bucket_masks,
    check_mask,
    hole_ratio,
    load_mask,
    random_masks,
    save_mask,
    semantic_mask,
)


def _binary(m: torch.Tensor) -> bool:
    return bool(((m == 0) | (m == 1)).all())


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_random_masks_are_binary_free_form_masks(kind):
    m = random_masks(16, 32, seed=1, kind=kind)
    assert m.shape == (16, 1, 32, 32) and m.dtype == torch.float32
    assert _binary(m)
    ratio = hole_ratio(m)
    assert (ratio > 0).all() and (ratio < 1).all()  # as in CoModGAN: never empty, never all hole
    assert len({tuple(x.flatten().tolist()) for x in m}) == 16  # all different


def test_mask_kinds_look_different():
    box, brush = random_masks(40, 64, seed=0, kind="box"), random_masks(40, 64, seed=0, kind="brush")

    def corner_share(m):  # 2x2 windows on the hole boundary holding 1 or 3 hole pixels: corners, steps
        count = F.avg_pool2d(F.pad((m == 0).float(), (1, 1, 1, 1), mode="replicate"), 2, 1) * 4
        return float(((count == 1) | (count == 3)).sum() / ((count > 0) & (count < 4)).sum())

    assert corner_share(box) < 0.15 < 0.4 < corner_share(brush)  # rectangles vs. round, slanted strokes
    assert hole_ratio(random_masks(40, 64, seed=0)).mean() > hole_ratio(brush).mean()


def test_mask_i_depends_only_on_seed_and_index():
    full = random_masks(8, 32, seed=3)
    assert torch.equal(full, random_masks(8, 32, seed=3))
    assert torch.equal(random_masks(3, 32, seed=3, offset=4), full[4:7])
    assert torch.equal(random_masks(1, 32, seed=3, offset=7)[0], full[7])
    assert not torch.equal(random_masks(8, 32, seed=4), full)
    assert random_masks(0, 32).shape == (0, 1, 32, 32)


def test_masks_scale_with_the_resolution():
    small, large = random_masks(24, 64, seed=5), random_masks(24, 256, seed=5)
    down = (F.avg_pool2d(large, 4) > 0.5).float()  # 256 -> 64 by area average + threshold
    a, b = small == 0, down == 0
    iou = (a & b).sum((1, 2, 3)).float() / (a | b).sum((1, 2, 3)).float()
    assert iou.min() > 0.8 and iou.mean() > 0.9
    assert (hole_ratio(small) - hole_ratio(large)).abs().max() < 0.05


def test_hole_buckets_are_comodgans():
    assert HOLE_BUCKETS == ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0))


@pytest.mark.parametrize("b", range(len(HOLE_BUCKETS)))
def test_bucket_masks_lie_in_their_bucket(b):
    lo, hi = HOLE_BUCKETS[b]
    m = bucket_masks(b, 6, 32, seed=2)
    assert m.shape == (6, 1, 32, 32) and _binary(m)
    ratio = hole_ratio(m)
    assert ((ratio > lo) & (ratio < hi)).all(), ratio
    assert (bucket_index(m) == b).all()
    assert torch.equal(bucket_masks(b, 2, 32, seed=2, offset=3), m[3:5])  # fixed evaluation set


def test_bucket_masks_errors():
    with pytest.raises(MaskError, match=r"hole ratio in \(0.0, 0.001\) at 8x8 after 20 tries"):
        bucket_masks((0.0, 0.001), 1, 8, max_tries=20)  # one hole pixel of 64 is already 1/64
    with pytest.raises(ValueError, match="bucket index must be in 0..4"):
        bucket_masks(5, 1, 8)
    with pytest.raises(ValueError, match="0 <= lo < hi <= 1"):
        bucket_masks((0.5, 0.2), 1, 8)
    with pytest.raises(ValueError, match="kind must be one of"):
        random_masks(1, 8, kind="circle")


def test_hole_ratio_and_bucket_index():
    m = torch.ones(3, 1, 10, 10)
    m[1, :, :3] = 0
    m[2, :, :9] = 0
    assert torch.allclose(hole_ratio(m), torch.tensor([0.0, 0.3, 0.9]))
    assert bucket_index(m).tolist() == [-1, 1, 4]
    assert torch.allclose(hole_ratio(m[1, 0]), torch.tensor([0.3]))


@pytest.fixture(scope="module")
def faces():
    return sf.synthfaces(0, range(4), size=64)["parts"]  # uint8 [4, 64, 64]


def test_semantic_mask_erases_exactly_the_part(faces):
    eyes = torch.from_numpy(faces == sf.EYES)
    assert eyes.sum((1, 2)).min() > 0
    m = semantic_mask(faces, "eyes", dilate=0)
    assert m.shape == (4, 1, 64, 64) and _binary(m)
    assert torch.equal(m[:, 0] == 0, eyes)
    both = semantic_mask(torch.from_numpy(faces).long(), ("eyes", "mouth"), dilate=0)
    assert torch.equal(both[:, 0] == 0, eyes | torch.from_numpy(faces == sf.MOUTH))
    assert torch.equal(semantic_mask(faces[0], ("eyes",), dilate=0), m[:1])


def test_semantic_mask_dilation(faces):
    m = semantic_mask(faces, ("mouth",))  # default: 1/32 of the side = 2 px at 64
    yy, xx = np.mgrid[:64, :64]
    for k in range(len(faces)):
        ys, xs = np.nonzero(faces[k] == sf.MOUTH)
        d2 = (yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2  # to every mouth pixel
        expected = (d2 <= 4).any(-1)
        assert np.array_equal(m[k, 0].numpy() == 0, expected)
    big = semantic_mask(faces, ("mouth",), dilate=4 / 64)
    assert ((big == 0) | (m == 1)).all() and (big == 0).sum() > (m == 0).sum()


def test_semantic_mask_errors(faces):
    with pytest.raises(
        MaskError, match="unknown part name.*'nose'.*valid parts are: background, skin, hair, eyes"
    ):
        semantic_mask(faces, ("eyes", "nose"))
    with pytest.raises(MaskError, match="integer label map"):
        semantic_mask(torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="dilate must be"):
        semantic_mask(faces, dilate=-1.0)


def test_check_mask_accepts_documented_forms():
    m = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = m[None, None]
    for form in (m, m[None], m[None, None], m.numpy(), m.bool(), m.to(torch.uint8) * 255, m.long()):
        out = check_mask(form)
        assert out.dtype == torch.float32 and torch.equal(out, expected)
    assert torch.equal(check_mask(torch.zeros(2, 1, 4, 4)), torch.zeros(2, 1, 4, 4))  # nothing kept: allowed
    assert torch.equal(check_mask(torch.ones(1, 4, 4)), torch.ones(1, 1, 4, 4))  # no hole: allowed
    out = check_mask(torch.ones(1, 1, 4, 4), image=torch.zeros(3, 3, 4, 4, dtype=torch.float64))
    assert out.dtype == torch.float64


@pytest.mark.parametrize(
    "mask, image, pattern",
    [
        (torch.ones(1, 1, 1, 4, 4), None, "5 dimensions"),
        (torch.ones(4), None, "1 dimensions"),
        (torch.ones(3, 4, 4), None, r"shape \(3, 4, 4\).*single-channel"),
        (torch.ones(2, 3, 4, 4), None, r"3 channels.*single-channel with 1 = keep"),
        (torch.ones(1, 1, 4, 4), torch.zeros(1, 3, 8, 6), r"4x4 \(H x W\) but the image is 8x6"),
        (torch.ones(2, 1, 4, 4), torch.zeros(3, 3, 4, 4), "batch of 2 but the images 3"),
        (torch.tensor([0.0, 0.5, 1.0, 0.2, 0.9]).reshape(1, 5), None, r"3 of 5 values .*mask > 0.5"),
        (torch.tensor([[0, 128], [255, 0]], dtype=torch.uint8), None, "1 of 4 values"),
        (torch.tensor([[float("nan"), 1.0], [float("nan"), 0.0]]), None, "2 NaN values"),
        ("mask.png", None, "torch tensor or numpy array"),
    ],
)
def test_check_mask_errors(mask, image, pattern):
    with pytest.raises(MaskError, match=pattern):
        check_mask(mask, image=image)


def test_mask_error_is_a_value_error():
    assert issubclass(MaskError, ValueError)


def test_load_mask_round_trip(tmp_path):
    m = random_masks(1, 32, seed=9)
    path = save_mask(m, tmp_path / "m.png")
    loaded = load_mask(path)
    assert loaded.shape == (1, 32, 32) and torch.equal(loaded, m[0])
    rgb = (m[0, 0].numpy()[..., None].repeat(3, -1) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")  # white = keep, black = hole
    assert torch.equal(load_mask(tmp_path / "rgb.png"), m[0])


def test_load_mask_threshold_and_resize(tmp_path):
    grey = np.array([[0, 127], [128, 255]], dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert load_mask(tmp_path / "g.png", size=2)[0].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert load_mask(tmp_path / "g.png", size=32).shape == (1, 32, 32)
    Image.fromarray(np.zeros((8, 6), np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(MaskError, match="not square"):
        load_mask(tmp_path / "wide.png", size=8)
    assert load_mask(tmp_path / "wide.png").shape == (1, 8, 6)


def test_load_mask_errors(tmp_path):
    with pytest.raises(MaskError, match="no such file"):
        load_mask(tmp_path / "missing.png")
    with pytest.raises(MaskError, match="is a directory"):
        load_mask(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(MaskError, match="cannot read it as an image"):
        load_mask(tmp_path / "bad.png")
    with pytest.raises(MaskError, match="saves one mask"):
        save_mask(torch.ones(2, 1, 4, 4), tmp_path / "two.png")
