"""Validated image I/O: load/save round trips, colour modes, corrupt files, sizes, datasets, checks."""

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ganinv.data.images import (
    ImageError,
    ImageFolderDataset,
    check_images,
    decode_image,
    load_image,
    save_image,
    to_uint8,
)


def _rgb(h=16, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_save_then_load_round_trip(tmp_path):
    x = torch.rand(3, 16, 16) * 2 - 1
    path = save_image(x, tmp_path / "sub" / "a.png")
    assert path.exists()
    y = load_image(path)
    assert y.shape == (3, 16, 16) and y.dtype == torch.float32
    assert y.min() >= -1 and y.max() <= 1
    assert (y - x).abs().max() <= 1 / 127.5 + 1e-6  # within 8-bit quantisation
    torch.testing.assert_close(to_uint8(y), to_uint8(x), rtol=0, atol=0)


def test_load_exact_pixel_values(tmp_path):
    arr = _rgb()
    Image.fromarray(arr).save(tmp_path / "a.png")
    y = load_image(tmp_path / "a.png")
    np.testing.assert_allclose(y.permute(1, 2, 0).numpy(), arr / 127.5 - 1, atol=1e-6)


def test_save_batch_writes_grid(tmp_path):
    x = torch.zeros(5, 3, 8, 8)
    path = save_image(x, tmp_path / "grid.png", nrow=2)
    im = Image.open(path)
    assert im.size == (2 * 10 + 2, 3 * 10 + 2)
    assert not list(tmp_path.glob(".grid*"))  # no temporary files left behind


def test_to_uint8():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255]
    assert to_uint8(x).dtype == torch.uint8
    assert to_uint8(np.array([-1.0, 1.0])).dtype == np.uint8


def test_rgba_composited_over_white(tmp_path):
    arr = np.zeros((4, 4, 4), dtype=np.uint8)
    arr[..., 0] = 255  # red
    arr[:, :2, 3] = 255  # left half opaque, right half transparent
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "a.png")
    y = to_uint8(load_image(tmp_path / "a.png"))
    assert y[:, 0, 0].tolist() == [255, 0, 0]
    assert y[:, 0, 3].tolist() == [255, 255, 255]


def test_grayscale_and_palette_become_rgb(tmp_path):
    g = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    y = load_image(tmp_path / "g.png")
    assert y.shape == (3, 4, 4)
    torch.testing.assert_close(y[0], y[1])
    torch.testing.assert_close(y[0], torch.from_numpy(g / 127.5 - 1).float())
    Image.fromarray(_rgb()).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (3, 16, 16)
    Image.fromarray(_rgb()).convert("CMYK").save(tmp_path / "c.jpg")
    assert load_image(tmp_path / "c.jpg").shape == (3, 16, 16)


def test_corrupt_file_raises_image_error_naming_it(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(ImageError, match="broken.png"):
        load_image(bad)
    # a truncated real PNG
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    assert issubclass(ImageError, ValueError)


def test_decode_image_from_bytes_matches_load_image(tmp_path):
    Image.fromarray(_rgb(32, 32)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    torch.testing.assert_close(decode_image(data), load_image(tmp_path / "a.png"), rtol=0, atol=0)
    resized = decode_image(memoryview(data), size=16)  # any bytes-like object, e.g. an upload's content
    torch.testing.assert_close(resized, load_image(tmp_path / "a.png", size=16), rtol=0, atol=0)
    with pytest.raises(ImageError, match="upload.png: not an image file"):
        decode_image(b"not an image" * 10, "upload.png")
    with pytest.raises(ImageError, match="<bytes>: corrupt or truncated"):
        decode_image(data[: len(data) // 2])
    Image.fromarray(_rgb(16, 32)).save(tmp_path / "wide.png")
    with pytest.raises(ImageError, match="not square"):
        decode_image((tmp_path / "wide.png").read_bytes(), size=16)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        decode_image(data, size=0)


def test_resize_square_and_refuse_non_square(tmp_path):
    Image.fromarray(_rgb(32, 32)).save(tmp_path / "sq.png")
    assert load_image(tmp_path / "sq.png", size=16).shape == (3, 16, 16)
    assert load_image(tmp_path / "sq.png", size=64).shape == (3, 64, 64)
    assert load_image(tmp_path / "sq.png", size=32).shape == (3, 32, 32)
    # a flat colour stays flat after the (Lanczos) resize
    Image.new("RGB", (40, 40), (10, 200, 30)).save(tmp_path / "flat.png")
    y = to_uint8(load_image(tmp_path / "flat.png", size=16))
    assert y[:, 5, 5].tolist() == [10, 200, 30]
    Image.fromarray(_rgb(20, 30)).save(tmp_path / "wide.png")
    assert load_image(tmp_path / "wide.png").shape == (3, 20, 30)  # no size: kept as is
    with pytest.raises(ImageError, match="not square.*crop"):
        load_image(tmp_path / "wide.png", size=16)
    with pytest.raises(ValueError, match="size"):
        load_image(tmp_path / "sq.png", size=0)


def test_folder_dataset(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.fromarray(_rgb(16, 16)).save(tmp_path / "x.png")
    Image.fromarray(_rgb(32, 32)).save(tmp_path / "a" / "y.JPG")
    Image.fromarray(_rgb(8, 8)).save(tmp_path / "a" / "b" / "z.webp")
    (tmp_path / "notes.txt").write_text("hello")
    ds = ImageFolderDataset(tmp_path, size=16)
    assert len(ds) == 3
    assert ds.files == ["a/b/z.webp", "a/y.JPG", "x.png"]
    assert ds.others == ["notes.txt"]
    for i in range(len(ds)):
        assert ds[i]["image"].shape == (3, 16, 16)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 16, 16)


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such"):
        ImageFolderDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        ImageFolderDataset(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "bad" / "ok.png")
    (tmp_path / "bad" / "junk.png").write_bytes(b"\x89PNG garbage garbage")
    ds = ImageFolderDataset(tmp_path / "bad")  # cheap construction: nothing decoded yet
    assert len(ds) == 2
    with pytest.raises(ImageError, match="junk.png"):
        ds[0]
    assert ds[1]["image"].shape == (3, 16, 16)
    with pytest.raises(ImageError, match="junk.png"):
        ImageFolderDataset(tmp_path / "bad", verify=True)


def test_zip_dataset(tmp_path):
    src = tmp_path / "src.png"
    arr = _rgb(16, 16)
    Image.fromarray(arr).save(src)
    zpath = tmp_path / "faces.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(src, "faces/001.png")
        zf.write(src, "faces/002.png")
        zf.writestr("__MACOSX/faces/._001.png", b"resource fork")
        zf.writestr("faces/bad.png", b"garbage")
    ds = ImageFolderDataset(zpath)
    assert ds.files == ["faces/001.png", "faces/002.png", "faces/bad.png"]
    assert ds.ignored == ["__MACOSX/faces/._001.png"]
    np.testing.assert_allclose(ds[0]["image"].permute(1, 2, 0).numpy(), arr / 127.5 - 1, atol=1e-6)
    with pytest.raises(ImageError, match=r"faces\.zip:faces/bad\.png"):
        ds[2]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [0, 1]), batch_size=2, num_workers=1)
    assert next(iter(loader))["image"].shape == (2, 3, 16, 16)


def test_check_images_accepts_valid_batch():
    x = torch.zeros(2, 3, 8, 8)
    assert check_images(x, size=8) is x


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.zeros(2, 1, 8, 8), "3 channels.*grey"),
        (torch.zeros(2, 3, 8, 9), "square"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "float.*127.5"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int64), "float"),
        (torch.zeros(3, 8, 8), "unsqueeze"),
        (torch.zeros(2, 8, 8, 3), "channels-last"),
        (torch.zeros(2, 3, 16, 16), "must be 8x8"),
        (torch.full((1, 3, 8, 8), 200.0), r"\[-1, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
    ],
)
def test_check_images_errors(x, match):
    with pytest.raises(ImageError, match=match):
        check_images(x, size=8, name="batch")


def test_check_images_names_the_argument():
    with pytest.raises(ImageError, match="^target"):
        check_images(torch.zeros(1, 1, 4, 4), name="target")
    with pytest.raises(TypeError):
        check_images(np.zeros((1, 3, 4, 4)))
