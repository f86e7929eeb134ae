"""``LatentExplorer``: an ipywidgets explorer of a StyleGAN2's latent spaces, testable without a browser.

A seed and the truncation ψ pick a sample w = mapping(z, ψ). One slider per InterFaceGAN direction and per
GANSpace component edits it by ``k · std`` (k in standard deviations of sampled w along the direction);
GANSpace edits act on layers [start, end) of w⁺, one range for all components (as GANSpace's notebook). An
uploaded image is inverted (:func:`ganinv.inversion.invert`, or an ``invert_fn``) and then edited in the
chosen space: W (its w), W⁺ (its w⁺) or F (w⁺ and f, with f̂ = f + G_f(ŵ⁺) − G_f(w⁺) as in
:func:`ganinv.editing.edit_f`). Style mixing shows layers [0, cutoff) of the edited code (without f) and
the rest from a second seed. What is observable is a trait value (tests read traits, no browser needed): the
picture is ``image.value`` (PNG bytes), messages are ``status.value``; the pure functions below do the work.
The "edits" toggle switches the attribute sliders between the linear InterFaceGAN directions and the
non-linear edit of :mod:`ganinv.nonlinear_editing` (the attribute classifiers' gradient walk, k σ of path
length), where the generator has a ``nonlinear.pt``.

Documented choices: changing the seed or ψ shows the seed's sample again (leaving an upload). Uploads are
decoded by the rules of :mod:`ganinv.data.images`; a square image of another size is resized (Lanczos) to
the inversion size and ``status`` says so; a non-square, corrupt or unreadable file or a failed inversion
only sets a message in ``status`` and keeps the view. Mode W without a code w (pSp, W⁺ optimisation), and
mode F without f (a sample: its f would be G's own feature, where F and W⁺ coincide), show W⁺ with a
note. Noise is always "const": equal settings give byte-identical pictures.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn

from . import editing as E
from .checkpoints import CheckpointError, load_generator
from .data.align import AlignError
from .data.images import ImageError, decode_image, to_uint8
from .editing import Direction, Directions, Features

Edit = tuple  # (Direction | tensor [D], strength in w units, layers (start, end) | None)
MODES = (("W", "W"), ("W⁺", "W+"), ("F", "F"))  # (label, value) of the edit-space toggle
_FALLBACK = {"W": "no code w here: showing W⁺", "F": "no F feature here: showing W⁺"}  # notes by mode
_CACHE: dict[tuple, Directions] = {}  # computed directions by (generator name, device, n_samples)


# ---------------------------------------------------------------------------------------------------------
# Pure functions


def edit_latent(
    G: nn.Module, latent: torch.Tensor, edits: Sequence[Edit], f: Features | None = None, noise_mode="const"
) -> tuple[torch.Tensor, Features | None]:
    """Apply ``edits`` ``(direction, strength, layers)`` in turn to w [N, D] or w⁺ [N, L, D]; with F features
    ``f`` (tensor or {res: tensor}) also return f̂ = f + G_f(ŵ⁺) − G_f(w⁺) for the sum of all edits (CLCAE
    §4, as :func:`~ganinv.editing.edit_f`). Zero strengths are skipped: no edits return the inputs as is."""
    out = latent
    for direction, strength, layers in edits:
        if strength:
            out = E.edit(G, out, direction, strength, layers)
    if f is None or out is latent:
        return out, f
    noise = G.make_noise(latent.shape[0], noise_mode)
    own = G.synthesis(latent, noise=noise, return_features=True)[1]
    own_hat = G.synthesis(out, noise=noise, return_features=True)[1]
    if isinstance(f, torch.Tensor):
        return out, f + (own_hat[f.shape[-1]] - own[f.shape[-1]])
    return out, {r: x + (own_hat[r] - own[r]) for r, x in f.items()}


def to_hwc(images: torch.Tensor) -> np.ndarray:
    """The first image of [N, 3, S, S] (or one [3, S, S]) in [-1, 1] as uint8 [S, S, 3]."""
    x = images[0] if images.ndim == 4 else images
    return to_uint8(x).permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def render(
    G: nn.Module,
    latent: torch.Tensor,
    f: Features | None = None,
    edits: Sequence[Edit] = (),
    noise_mode="const",
) -> np.ndarray:
    """G(latent, f) after ``edits`` (see :func:`edit_latent`), first sample, as uint8 [S, S, 3]."""
    code, f_hat = edit_latent(G, latent, edits, f, noise_mode)
    return to_hwc(E.render(G, code, f_hat, noise_mode=noise_mode))


def png_bytes(image: np.ndarray | torch.Tensor) -> bytes:
    """PNG file bytes of uint8 [S, S, 3] (or of an image tensor in [-1, 1], via :func:`to_hwc`)."""
    arr = to_hwc(image) if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"png_bytes needs uint8 [H, W, 3], got {arr.dtype} {list(arr.shape)}")
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode_upload(content: bytes, name: str, size: int) -> tuple[torch.Tensor, str]:
    """An image file's bytes as ([1, 3, size, size] in [-1, 1], note): a square image of another size is
    resized (the note says from what); :class:`ImageError` names a non-square, corrupt or unreadable one."""
    x = decode_image(content, name)  # [3, H, W]
    h, w = x.shape[1:]
    if (h, w) == (size, size):
        return x[None], ""
    x = decode_image(content, name, size)  # resizes a square image, refuses a non-square one
    return x[None], f"resized from {w}x{h} to {size}x{size}"


def inversion_codes(result, device: torch.device | str = "cpu") -> dict:
    """``{"w", "w_plus", "f"}`` (first sample, on ``device``, None where absent) of an inversion result: a
    mapping, a NamedTuple (``CLCAEOutput``) or an object with those attributes (``InversionResult``)."""
    if hasattr(result, "_asdict"):
        result = result._asdict()
    get = result.get if isinstance(result, Mapping) else (lambda k: getattr(result, k, None))
    w, w_plus, f = get("w"), get("w_plus"), get("f")
    w_plus = get("w_plus_mix") if w_plus is None else w_plus
    if w is None and w_plus is None:
        raise ValueError("the inversion returned no latent code (expected w and/or w_plus)")
    w = None if w is None else w.reshape(-1, w.shape[-1])[:1].to(device)  # [1, D]
    w_plus = None if w_plus is None else (w_plus if w_plus.ndim == 3 else w_plus[None])[:1].to(device)
    if isinstance(f, torch.Tensor):
        f = (f if f.ndim == 4 else f[None])[:1].to(device)  # [1, C, r, r]
    elif isinstance(f, Mapping):
        f = {r: (x if x.ndim == 4 else x[None])[:1].to(device) for r, x in f.items()}
    return {"w": w, "w_plus": w_plus, "f": f}


def explorer_directions(
    G: nn.Module, directions=None, generator: str | None = None, n_samples=2000
) -> Directions:
    """``directions`` as given (Directions, a mapping, or a path / bundled name for ``load_directions``);
    None: the bundled ``<generator>/directions.pt``, else InterFaceGAN directions of the SFN's binary
    attributes on ``n_samples`` samples, computed once per process and generator name (cached in memory)."""
    if isinstance(directions, (str, os.PathLike)):
        return E.load_directions(directions, G)
    if directions is not None:
        return directions if isinstance(directions, Directions) else Directions(directions)
    key = (generator, str(next(G.parameters()).device), n_samples)
    if generator is not None and key in _CACHE:
        return _CACHE[key]
    try:
        dirs = E.load_directions(generator, G) if generator is not None else None
    except CheckpointError:
        dirs = None
    dirs = dirs if dirs is not None else E.interfacegan_directions(G, n=n_samples, generator=generator)
    if generator is not None:
        _CACHE[key] = dirs
    return dirs


# ---------------------------------------------------------------------------------------------------------
# The explorer


class LatentExplorer:
    """Sliders over a generator's latent spaces; ``.widget`` is the root VBox (or display the explorer).

    ``generator``: a Generator module or a bundled name / checkpoint path. ``directions``: see
    :func:`explorer_directions`; when they hold no GANSpace component, ``n_components`` PCs are added.
    Uploads are inverted by ``invert_fn(images [1, 3, S, S]) -> result`` when given (any result
    :func:`inversion_codes` reads), else by :func:`ganinv.inversion.invert` with the ``method`` dropdown,
    ``encoder`` (default: the generator's bundled name) and ``invert_kwargs``; S is ``image_size``
    (default: G's size). ``continuous_update=False``: sliders render on release only. ``max_sigma``: the
    direction sliders' range in units of each direction's σ (flipping an attribute takes 4–8 σ, see
    :data:`ganinv.eval.editing.STRENGTHS`).
    """

    def __init__(
        self,
        generator: nn.Module | str = "synthfaces64",
        directions: Directions | Mapping[str, Direction] | str | None = None,
        encoder: nn.Module | str | None = None,
        device: str | torch.device = "cpu",
        *,
        method: str = "clcae-f",
        invert_fn: Callable[[torch.Tensor], object] | None = None,
        invert_kwargs: dict | None = None,
        image_size: int | None = None,
        seed: int = 0,
        truncation: float = 0.7,
        n_components: int = 5,
        n_samples: int = 2000,
        max_sigma: float = 8.0,
        continuous_update: bool = False,
        display_size: int = 256,
        nonlinear: Mapping[str, object] | str | None = None,
    ) -> None:
        self.device = torch.device(device)
        if isinstance(generator, nn.Module):
            self.G, name = generator.to(self.device).eval(), None
        else:
            self.G, name = load_generator(generator, device=self.device).eval(), str(generator)
        dirs = explorer_directions(self.G, directions, name, n_samples)
        if n_components > 0 and not any(d.kind == "ganspace" for d in dirs.values()):
            pcs = E.ganspace_directions(self.G, k=n_components, generator=name)
            dirs = Directions({**dirs, **pcs}, dirs.generator, dirs.generator_config)
        if bad := [k for k, d in dirs.items() if tuple(d.vector.shape) != (self.G.style_dim,)]:
            raise ValueError(f"directions {bad} do not have G's w shape [{self.G.style_dim}]")
        self.directions = dirs
        self.nonlinear = _nonlinear(self.G, nonlinear, name)  # attribute -> NonlinearDirection ({}: none)
        self.invert_fn, self.encoder = invert_fn, encoder if encoder is not None else name
        self.invert_kwargs, self.image_size = dict(invert_kwargs or {}), image_size or self.G.size
        self.render_count = 0  # renders of the main picture (tests and benchmarks count them)
        self._depth, self._dirty, self._event = 0, False, ""
        self._source: dict = {}  # the codes being edited: {"w"} of a sample or an inversion's codes
        self._source_name, self._upload = "seed", None
        self._build(seed, truncation, method, max_sigma, continuous_update, display_size)
        self._sample()
        self.update()

    def _build(self, seed: int, psi: float, method: str, sigma: float, cu: bool, px: int) -> None:
        W, L, kw = widgets, self.G.n_latent, dict(continuous_update=cu, style={"description_width": "110px"})
        self.image = W.Image(format="png", width=px, height=px)
        self.mix_image = W.Image(format="png", width=px, height=px, layout=W.Layout(display="none"))
        self.status = W.Label("")
        self.seed = W.IntText(seed, description="seed")
        self.truncation = W.FloatSlider(psi, min=0.0, max=1.0, step=0.05, description="truncation ψ", **kw)
        tips = ["edit the code w", "edit the code w⁺", "edit w⁺ and the feature f"]
        self.mode = W.ToggleButtons(options=MODES, value="W", description="edit in", tooltips=tips)
        self.sliders: dict[str, widgets.FloatSlider] = {}
        opts = dict(min=-sigma, max=sigma, step=0.1, **kw)
        for k, d in self.directions.items():
            tip = f"{d.kind}; 1 = {d.std:.3g} in w" + (f"; accuracy {d.accuracy:.2f}" if d.accuracy else "")
            self.sliders[k] = W.FloatSlider(0.0, description=k, tooltip=tip, **opts)
        gs = next((d.layers for d in self.directions.values() if d.kind == "ganspace" and d.layers), (0, L))
        self._default_layers = (int(gs[0]), int(gs[1]))
        self.layer_start = W.IntSlider(gs[0], min=0, max=L - 1, description="layers from", **kw)
        self.layer_end = W.IntSlider(gs[1], min=1, max=L, description="to (excl.)", **kw)
        self.mix = W.Checkbox(False, description="style mixing")
        self.mix_seed = W.IntText(seed + 1, description="fine from seed")
        self.cutoff = W.IntSlider(L // 2, min=0, max=L, description="cutoff layer", **kw)
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="invert image")
        self.align = W.Checkbox(False, description="align face (FFHQ)")  # uploads: dlib, the [faces] extra
        options = [method] if self.invert_fn is not None else _methods()
        self.method = W.Dropdown(options=options, value=method, description="method")
        self.method.layout.display = "none" if self.invert_fn is not None else ""
        self.reset_button = W.Button(description="reset edits")
        self.editor = W.ToggleButtons(
            options=("linear", "non-linear"),
            value="linear",
            description="edits",
            tooltips=["InterFaceGAN directions", "attribute classifiers' gradient walk"],
        )
        self.editor.layout.display = "" if self.nonlinear else "none"

        for c in (self.seed, self.truncation):
            c.observe(self._on_sample, names="value")
        for c in (self.mode, self.editor, *self.sliders.values(), self.mix, self.mix_seed, self.cutoff):
            c.observe(lambda _: self._request(), names="value")
        for c in (self.layer_start, self.layer_end):
            c.observe(self._on_layers, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.method.observe(self._on_method, names="value")
        self.reset_button.on_click(lambda _: self.reset())

        rows: list[widgets.Widget] = [W.HBox([self.image, self.mix_image]), self.status]
        rows += [W.HBox([self.seed, self.truncation]), self.mode, self.editor]
        for title, gan in (("InterFaceGAN", False), ("GANSpace", True)):
            if names := [k for k, d in self.directions.items() if (d.kind == "ganspace") == gan]:
                rows += [W.HTML(f"<b>{title}</b> (σ of sampled w)"), *(self.sliders[k] for k in names)]
        if any(d.kind == "ganspace" for d in self.directions.values()):
            rows.append(W.HBox([self.layer_start, self.layer_end]))
        rows += [
            W.HBox([self.upload, self.align, self.method]),
            W.HBox([self.mix, self.mix_seed, self.cutoff]),
        ]
        self.widget = W.VBox([*rows, self.reset_button])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # -- events -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Change several controls with one render at the end (the suspend flag; nesting renders once)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._dirty:
                self._dirty = False
                self.update()

    def _request(self) -> None:
        if self._depth:
            self._dirty = True
        else:
            self.update()

    def _on_sample(self, change) -> None:
        self._sample()
        self._event = ""
        self._request()

    def _on_layers(self, change) -> None:
        """Keep start < end (moving the other slider); render once, and only if a GANSpace edit is on."""
        with self.batch():
            start, end = self.layer_start, self.layer_end
            if start.value >= end.value and change.owner is start:
                end.value = start.value + 1
            elif start.value >= end.value:
                start.value = end.value - 1
            if any(self.sliders[k].value for k, d in self.directions.items() if d.kind == "ganspace"):
                self._request()

    def _on_upload(self, change) -> None:
        if change.new:
            item = change.new[0]
            self.load_bytes(bytes(item["content"]), str(item.get("name") or "upload"))
            self.upload.value = ()  # lets the same file be uploaded again

    def _on_method(self, change) -> None:
        if self._upload is not None and self._source_name.startswith("upload"):
            self._invert(*self._upload, note="")

    # -- state ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample_w(self, seed: int) -> torch.Tensor:
        """w = mapping(z, ψ) [1, D] with z drawn from a torch.Generator seeded with ``seed``."""
        z = torch.randn(1, self.G.style_dim, generator=torch.Generator().manual_seed(int(seed)))
        return self.G.mapping(z.to(self.device), float(self.truncation.value))

    def _sample(self) -> None:
        self._source, self._source_name = {"w": self.sample_w(self.seed.value)}, "seed"

    def load_bytes(self, content: bytes, name: str = "upload") -> bool:
        """Decode, invert and show an image file's bytes (what the upload button does); False, with the
        problem in ``status`` and the view kept, when the file is unusable or the inversion fails."""
        try:
            if self.align.value:  # the largest face, FFHQ-aligned at the generator's size
                from .data.align import align_largest
                from .data.images import open_rgb, pil_to_tensor

                aligned, note = align_largest(open_rgb(io.BytesIO(content), name), self.image_size)
                x, note = pil_to_tensor(aligned)[None], "aligned" + (f"; {note}" if note else "")
            else:
                x, note = decode_upload(content, name, self.image_size)
        except (ImageError, AlignError) as e:  # unreadable file; no face, or dlib missing
            return self._fail(f"{name}: {e}" if not str(e).startswith(name) else str(e))
        return self._invert(x, name, note)

    def _invert(self, x: torch.Tensor, name: str, note: str) -> bool:
        try:
            if self.invert_fn is not None:
                result = self.invert_fn(x.to(self.device))
            else:
                from .inversion import invert

                enc = None if self.method.value.startswith("optim") else self.encoder
                kw = dict(method=self.method.value, generator=self.G, encoder=enc, device=str(self.device))
                result = invert(x.to(self.device), **kw, **self.invert_kwargs)
            codes = inversion_codes(result, self.device)
        except Exception as e:  # a UI callback: report any failure, keep the current view
            return self._fail(f"{name}: inversion failed ({type(e).__name__}: {e})")
        self._upload, self._source, self._source_name = (x, name), codes, f"upload:{name}"
        how = "" if self.invert_fn is not None else f" with {self.method.value}"
        self._event = f"inverted {name}{how}" + (f" ({note})" if note else "")
        self._request()
        return True

    def _fail(self, message: str) -> bool:
        self._event = self.status.value = message
        return False

    def edits(self) -> list[Edit]:
        """The active edits ``(direction, strength in w units, layers)`` in slider order."""
        layers, out = (self.layer_start.value, self.layer_end.value), []
        for k, d in self.directions.items():
            if self.editor.value == "non-linear" and k in self.nonlinear:
                d = self.nonlinear[k]  # the same slider, in σ of path length
            if self.sliders[k].value:
                out.append((d, self.sliders[k].value * d.std, layers if d.kind == "ganspace" else d.layers))
        return out

    def code(self) -> tuple[torch.Tensor, Features | None, str]:
        """The unedited code of the current mode: (w or w⁺, f or None, a note when the mode fell back)."""
        src, mode = self._source, self.mode.value
        w, w_plus, f = src.get("w"), src.get("w_plus"), src.get("f")
        if mode == "W" and w is not None:
            return w, None, ""
        w_plus = w_plus if w_plus is not None else self.G.broadcast(w)
        if mode == "F" and f is not None:
            return w_plus, f, ""
        return w_plus, None, _FALLBACK.get(mode, "")

    @torch.no_grad()
    def update(self) -> None:
        """Render the current view into ``image`` (and ``mix_image`` when style mixing is on)."""
        self.render_count += 1
        latent, f, note = self.code()
        edited, f_hat = edit_latent(self.G, latent, self.edits(), f)
        self.image.value = png_bytes(E.render(self.G, edited, f_hat))
        if self.mix.value:
            mixed = self.G.style_mix(edited, self.sample_w(self.mix_seed.value), self.cutoff.value)
            self.mix_image.value = png_bytes(E.render(self.G, mixed))
        self.mix_image.layout.display = "" if self.mix.value else "none"
        self.status.value = " · ".join(m for m in (self._event, note) if m)

    def reset(self) -> None:
        """All edits to 0 and the GANSpace layers to their defaults, with exactly one render."""
        with self.batch():
            for s in self.sliders.values():
                s.value = 0.0
            self.layer_start.value, self.layer_end.value = self._default_layers
            self._dirty = True

    def state(self) -> dict:
        """A short deterministic summary for printing: source, seed, ψ, mode, non-zero edits (in σ), and
        the GANSpace layers / mixing settings when they matter."""
        out = dict(source=self._source_name, seed=int(self.seed.value))
        out.update(truncation=round(float(self.truncation.value), 3), mode=self.mode.value)
        if self.editor.value != "linear":
            out["editor"] = self.editor.value
        out["edits"] = {k: round(float(s.value), 2) for k, s in self.sliders.items() if s.value}
        if any(self.directions[k].kind == "ganspace" for k in out["edits"]):
            out["layers"] = [self.layer_start.value, self.layer_end.value]
        if self.mix.value:
            out["mix"] = {"seed": int(self.mix_seed.value), "cutoff": int(self.cutoff.value)}
        return out


def _nonlinear(G: nn.Module, nonlinear, generator: str | None) -> dict:
    """The explorer's non-linear directions: as given (a mapping or a path / bundled name), else the
    generator's bundled ``nonlinear.pt`` when it has one, else none ({})."""
    from .nonlinear_editing import load_nonlinear

    if isinstance(nonlinear, (str, os.PathLike)):
        return dict(load_nonlinear(nonlinear, G))
    if nonlinear is not None:
        return dict(nonlinear)
    if generator is None:
        return {}
    try:
        return dict(load_nonlinear(generator, G))
    except CheckpointError:
        return {}


def _methods() -> list[str]:
    from .inversion import METHODS  # imported on use: the explorer works with an invert_fn alone

    return list(METHODS)


def time_update(explorer: LatentExplorer, n: int = 10) -> float:
    """Measured wall seconds per update triggered through a control (the first direction slider moved
    between 1 and -1, then restored; a plain ``update()`` without directions), after one warm-up."""
    slider = next(iter(explorer.sliders.values()), None)
    old = slider.value if slider is not None else None

    def step(i: int) -> None:
        if slider is None:
            explorer.update()
        else:
            slider.value = 1.0 if i % 2 == 0 else -1.0

    step(1)
    start = time.perf_counter()
    for i in range(n):
        step(i)
    seconds = (time.perf_counter() - start) / n
    if slider is not None:
        slider.value = old
    return seconds
