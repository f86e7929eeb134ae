"""Validated image I/O: load real images, save grids, check tensors, and image-folder datasets.

Conventions (the GAN convention used everywhere in ganinv): an image is a float tensor ``[3, H, W]``
with values in ``[-1, 1]``; a batch is ``[N, 3, H, W]``. Pixel value ``p`` in ``0..255`` maps to
``p / 127.5 - 1``.

Colour modes are converted to RGB with one rule, applied by :func:`load_image` and
:class:`ImageFolderDataset` alike:

* EXIF orientation is applied first (photos come out upright);
* ``RGB`` is kept; grey (``L``, ``1``) is replicated to three channels; 16-bit grey (``I;16``, ``I``)
  is scaled from ``0..65535`` to ``0..255`` first;
* images with transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a transparent colour)
  are composited over a **white** background;
* ``P`` (palette), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` are converted with PIL's ``convert("RGB")``;
* floating-point images (``F``) are refused (their value range is unknown);
* for multi-frame files (GIF, animated WebP) the first frame is used.

Resizing: when a ``size`` is asked for and a square image has another size, it is resized with PIL's
Lanczos filter (high quality, antialiased when downsampling). Non-square images are refused: crop or
align the face to a square first (ganinv never crops silently, which would move the face).
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageError",
    "ImageFolderDataset",
    "check_images",
    "decode_image",
    "load_image",
    "save_image",
    "to_uint8",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class ImageError(ValueError):
    """An image file or image tensor is unusable; the message names it and says what to do."""


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------


def _check_size(size) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer or None, got {size!r}")
    return int(size)


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Convert a decoded PIL image to RGB following the module's documented rule."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "F":
        raise ImageError(f"{name}: floating-point images (mode F) are not supported; save it as 8-bit RGB")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(arr / 65535.0 * 255.0 if arr.max(initial=0) > 255 else arr, 0, 255)
        img = Image.fromarray(np.rint(arr).astype(np.uint8), mode="L")
        mode = "L"
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def open_rgb(source, name: str) -> Image.Image:
    """Decode ``source`` (a path or a binary file object) into an RGB PIL image by the module's colour rule;
    :class:`ImageError` naming ``name`` for a missing, unreadable or corrupt file."""
    try:
        with Image.open(source) as img:
            img.seek(0)
            img.load()
            rgb = _to_rgb(img, name)
    except ImageError:
        raise
    except FileNotFoundError as e:
        raise ImageError(f"{name}: no such file") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{name}: not an image file PIL can read (unknown format or corrupt header)") from e
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise ImageError(f"{name}: corrupt or truncated image ({type(e).__name__}: {e})") from e
    return rgb


def pil_to_tensor(rgb: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a float tensor ``[3, H, W]`` in ``[-1, 1]``."""
    arr = np.asarray(rgb.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def _decode(source, name: str, size: int | None) -> torch.Tensor:
    """Decode ``source`` (a path or a binary file object) into a ``[3, H, W]`` tensor in [-1, 1]."""
    rgb = open_rgb(source, name)
    w, h = rgb.size
    if size is not None and (w, h) != (size, size):
        if w != h:
            raise ImageError(
                f"{name}: image is {w}x{h}, not square; align the face first (`ganinv align`, or --align) "
                f"or crop it to a square, then it is resized to {size}x{size}"
            )
        rgb = rgb.resize((size, size), Image.LANCZOS)
    return pil_to_tensor(rgb)


def load_image(path, size: int | None = None) -> torch.Tensor:
    """Load an image file as a float tensor ``[3, H, W]`` in ``[-1, 1]`` (RGB).

    Colour modes are converted with the rule in the module docstring (transparency over white).
    With ``size``, a square image of another size is resized with a Lanczos filter and a
    non-square image raises :class:`ImageError` (crop/align it first). A missing, unreadable or
    corrupt file raises :class:`ImageError` naming the file and the problem.
    """
    size = _check_size(size)
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory; use ImageFolderDataset for folders of images")
    return _decode(p, str(p), size)


def decode_image(data: bytes, name: str = "<bytes>", size: int | None = None) -> torch.Tensor:
    """Decode an image file held in memory (``bytes``, ``bytearray`` or ``memoryview``: an upload, a zip
    member) as a float tensor ``[3, H, W]`` in ``[-1, 1]``, by the same rules as :func:`load_image`
    (colour modes, resizing of square images to ``size``, non-square images refused). ``name`` is what
    error messages call it. Unreadable or corrupt data raise :class:`ImageError`.
    """
    return _decode(io.BytesIO(bytes(data)), name, _check_size(size))


# --------------------------------------------------------------------------------------------------
# Tensors: checks, conversion, saving
# --------------------------------------------------------------------------------------------------


def check_images(x, size: int | None = None, name: str = "images") -> torch.Tensor:
    """Validate an image batch ``[N, 3, H, W]`` (float, square, ``size`` if given); return it.

    Raises :class:`ImageError` (a ``ValueError``) whose message names the problem and the fix, or
    ``TypeError`` if ``x`` is not a tensor.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N, 3, H, W], got {type(x).__name__}")
    if x.ndim == 3 and x.shape[0] in (1, 3):
        raise ImageError(
            f"{name} has shape {tuple(x.shape)}, a single image; expected a batch [N, 3, H, W]: "
            f"use {name}.unsqueeze(0)"
        )
    if x.ndim != 4:
        raise ImageError(f"{name} must have 4 dimensions [N, 3, H, W], got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if c != 3:
        hint = (
            "it looks channels-last: use x.permute(0, 3, 1, 2)"
            if w == 3
            else "replicate grey images with x.expand(-1, 3, -1, -1)"
            if c == 1
            else "drop the alpha channel with x[:, :3]"
            if c == 4
            else "images must be RGB"
        )
        raise ImageError(f"{name} must have 3 channels (RGB), got {c} in shape {tuple(x.shape)}; {hint}")
    if not x.is_floating_point():
        raise ImageError(
            f"{name} must be a float tensor with values in [-1, 1], got dtype {x.dtype}; "
            f"convert 0..255 pixels with x.float() / 127.5 - 1"
        )
    if h != w:
        raise ImageError(f"{name} must be square, got {h}x{w} (H x W); crop or align to a square first")
    if size is not None and h != size:
        raise ImageError(
            f"{name} must be {size}x{size} for this model, got {h}x{w}; resize them "
            f"(e.g. torch.nn.functional.interpolate(x, size={size}, mode='bilinear', antialias=True))"
        )
    if n == 0:
        raise ImageError(f"{name} is an empty batch (N = 0)")
    if not torch.isfinite(x).all():
        raise ImageError(f"{name} contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if hi > 4 or lo < -4:
        raise ImageError(
            f"{name} has values in [{lo:.3g}, {hi:.3g}] but images must lie in [-1, 1]; "
            f"if these are 0..255 pixel values use x / 127.5 - 1"
        )
    return x


def pool_to(image: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool ``[N, C, H, H]`` down to ``size`` (the release's ``face_pool``); H must be a multiple."""
    h = image.shape[-1]
    if h == size:
        return image
    if h < size or h % size or image.shape[-2] != h:
        raise ValueError(f"cannot pool images of shape {list(image.shape)} to {size}x{size}")
    return torch.nn.functional.avg_pool2d(image, h // size)


def to_uint8(images):
    """Map images in ``[-1, 1]`` to ``uint8`` in ``0..255`` (rounded, clipped); same shape and layout.

    Accepts a tensor (returns a ``torch.uint8`` tensor) or a numpy array (returns ``np.uint8``).
    """
    if isinstance(images, torch.Tensor):
        x = images.detach().float()
        return ((x + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    a = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((a + 1) * 127.5), 0, 255).astype(np.uint8)


def grid_array(images, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """Images [N, C, H, W] in [-1, 1] (tensor or array; C = 1 or 3) -> one uint8 [rows, cols, 3] grid,
    ``nrow`` images per row, white padding of ``pad`` pixels."""
    images = torch.as_tensor(images)
    n, c, h, w = images.shape
    ncol = max(1, min(nrow, n))
    rows = (n + ncol - 1) // ncol
    u8 = to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()
    if c == 1:
        u8 = np.repeat(u8, 3, axis=3)
    out = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, ncol)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y : y + h, x : x + w] = u8[k]
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(images, path, nrow: int = 8, pad: int = 2) -> Path:
    """Save one image ``[3, H, W]`` or a batch ``[N, 3, H, W]`` (as a grid, ``nrow`` per row).

    Values in ``[-1, 1]`` are mapped to ``0..255``. Grey images (1 channel) are allowed. The format
    follows the file extension; the file is written to a temporary name and then moved into place,
    so an existing file is never left half-written.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a tensor [3, H, W] or [N, 3, H, W], got {type(images).__name__}")
    x = images.detach().cpu()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ImageError(f"images to save must be [3, H, W] or [N, 3, H, W], got shape {tuple(images.shape)}")
    if x.shape[0] == 0:
        raise ImageError("images to save is an empty batch")
    if not x.is_floating_point():
        raise ImageError(f"images to save must be float in [-1, 1], got dtype {x.dtype}")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive integer, got {nrow!r}")
    path = Path(path)
    if bad := int((~torch.isfinite(x)).sum()):
        raise ImageError(
            f"{path}: not written: the images hold {bad} non-finite values (NaN / inf), so the model that "
            "made them is broken (check its checkpoint's weights, or the truncation / edit strength given)"
        )
    grid = grid_array(x, nrow, pad if x.shape[0] > 1 else 0)
    if not path.suffix:
        raise ValueError(f"{path}: give a file extension (.png, .jpg, ...) to choose the format")
    if path.is_dir():
        raise ImageError(f"{path} is a folder: give a file name such as {path / 'image.png'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(grid).save(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; images get the usual permissions
        os.replace(tmp, path)
    except OSError as e:  # e.g. a full disk: name the file the user asked for, not the temporary one
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, f"cannot write it ({e.strerror or e})", str(path)) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------------------------------
# Folder / zip dataset
# --------------------------------------------------------------------------------------------------


def _is_ignored(rel: str) -> bool:
    """Hidden files and macOS ``__MACOSX`` metadata are not images (listed in ``ignored``)."""
    parts = rel.replace("\\", "/").split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts if p)


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images in a folder (searched recursively) or a ``.zip`` archive; items are ``{"image": x}``.

    Files with the extensions in :data:`IMAGE_EXTENSIONS` (any case) are used, sorted by path.
    Hidden files and ``__MACOSX`` folders are ignored and listed in ``self.ignored``; other files
    are listed in ``self.others``. Nothing else is skipped: a corrupt image raises
    :class:`ImageError` naming it when it is loaded, or at construction with ``verify=True``
    (a cheap header check with PIL's ``verify()``). ``size`` resizes square images and refuses
    non-square ones, as :func:`load_image` does; with ``size=None`` images keep their own size.
    """

    def __init__(self, root, size: int | None = None, verify: bool = False):
        self.root = Path(root)
        self.size = _check_size(size)
        if not self.root.exists():
            raise FileNotFoundError(f"{self.root}: no such folder or .zip file")
        self.is_zip = self.root.is_file()
        self.ignored: list[str] = []
        self.others: list[str] = []
        if self.is_zip:
            if not zipfile.is_zipfile(self.root):
                raise ImageError(f"{self.root}: not a folder and not a .zip archive")
            with zipfile.ZipFile(self.root) as zf:
                names = [i.filename for i in zf.infolist() if not i.is_dir()]
        else:
            names = [p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()]
        self.files: list[str] = []
        for rel in sorted(names):
            if _is_ignored(rel):
                self.ignored.append(rel)
            elif rel.lower().endswith(IMAGE_EXTENSIONS):
                self.files.append(rel)
            else:
                self.others.append(rel)
        if not self.files:
            raise ImageError(
                f"{self.root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} recursively"
                + (f"; found {len(self.others)} other files" if self.others else "")
                + ")"
            )
        self._zip = None
        self._zip_pid = None
        if verify:
            for i in range(len(self.files)):
                self._verify(i)

    def __len__(self) -> int:
        return len(self.files)

    def name(self, i: int) -> str:
        """A readable name of file ``i`` (``archive.zip:member`` for zip archives)."""
        return f"{self.root}:{self.files[i]}" if self.is_zip else str(self.root / self.files[i])

    def _open(self, i: int):
        if not self.is_zip:
            return self.root / self.files[i]
        if self._zip is None or self._zip_pid != os.getpid():  # one handle per worker process
            self._zip = zipfile.ZipFile(self.root)
            self._zip_pid = os.getpid()
        return io.BytesIO(self._zip.read(self.files[i]))

    def _verify(self, i: int) -> None:
        name = self.name(i)
        try:
            with Image.open(self._open(i)) as img:
                img.verify()
        except Exception as e:  # PIL raises many types here; all mean "corrupt"
            raise ImageError(f"{name}: corrupt or unreadable image ({type(e).__name__}: {e})") from e

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"indices must be integers, got {type(i).__name__}")
        n = len(self.files)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        return {"image": _decode(self._open(int(i)), self.name(int(i)), self.size)}

    def __getstate__(self):  # zip handles do not pickle; reopen lazily in workers
        state = self.__dict__.copy()
        state["_zip"] = None
        state["_zip_pid"] = None
        return state

    def __repr__(self) -> str:
        return f"ImageFolderDataset({str(self.root)!r}, size={self.size}, {len(self)} images)"
