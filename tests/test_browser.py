"""The LatentExplorer in a real browser: JupyterLab runs its cell, a slider moves, the picture changes.

JupyterLab is served on localhost (a free port, a random token, a temporary root and its own settings,
workspace, config and runtime folders, in its own process group) and opened in Debian's headless Chromium
(``/usr/bin/chromium``, or ``$GANINV_CHROMIUM``) driven by Playwright. Playwright never downloads a browser
here (no ``playwright install``). ``make test`` installs chromium with apt-get when it is missing; without
chromium or the ``playwright`` package the tests fail and say how to install them (they do not skip).

Helpers, usable with any notebook:

- :func:`prepare_notebook` copies a notebook into the served root as ``notebooks/<name>``, outputs and saved
  widget state removed, and with a papermill-style ``injected-parameters`` cell after its ``parameters``
  cell (so cell indices after it shift by one; :func:`find_cell` finds a cell by its source);
- :func:`run_explorer_cell` opens it, waits for the kernel, runs cells 0..``cell_index`` with Shift+Enter
  from the first cell (``run_above=False``: only that cell) and returns the cell once its widget's ``<img>``
  is shown;
- :func:`move_slider` drags a FloatSlider's handle with the mouse; the release sends the value, as
  ``continuous_update=False`` wants.

Notebook 04's screenshot, ``04_explorer_browser.png``, goes to ``$GANINV_FIGURES_DIR`` when set, else to the
test's ``tmp_path`` (a test does not write into the repository by itself):
``GANINV_FIGURES_DIR=figures pytest tests/test_browser.py`` refreshes ``figures/04_explorer_browser.png``.
The tiny notebook's screenshot stays in ``tmp_path``. The kernels' own figure writes go to the served
root's ``figures/`` (``GANINV_FIGURES_DIR`` is set for the server), never to the repository.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_04 = ROOT / "notebooks" / "04_editing.ipynb"
CHROMIUM = os.environ.get("GANINV_CHROMIUM", "/usr/bin/chromium")
SERVER_TIMEOUT = 120  # s until the HTTP API answers
KERNEL_TIMEOUT = 120  # s until the notebook is shown with an idle kernel (a slow CPU imports torch slowly)
CELL_TIMEOUT = 300  # s for the cells up to the explorer cell (the tiny notebook takes seconds)
WIDGET_TIMEOUT = 60  # s for the widget's picture to appear / to change after a slider move
VIEWPORT = {"width": 1280, "height": 1800}  # tall enough for the whole explorer (its screenshot)
# JupyterLab user settings for the test: no news pop-up, every cell attached to the DOM
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


# ---------------------------------------------------------------------------------------------------------
# JupyterLab server


@dataclass
class Lab:
    """A running ``jupyter lab``: its root folder, port, token, process and log file."""

    root: Path
    port: int
    token: str
    proc: subprocess.Popen
    log: Path

    def url(self, path: str = "", reset: bool = False) -> str:
        """Address of ``path`` with the token (``reset``: start from an empty workspace)."""
        query = f"{'reset&' if reset else ''}token={self.token}"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}?{query}"

    def api(self, path: str, method: str = "GET", timeout: float = 10) -> object:
        """JSON answer of the REST API (no proxy: the server is on localhost)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return text[-chars:]

    def shutdown_kernels(self) -> None:
        """Close every notebook session (and its kernel)."""
        with contextlib.suppress(Exception):
            for s in self.api("sessions"):
                self.api(f"sessions/{s['id']}", method="DELETE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path) -> Lab:
    """``jupyter lab`` serving ``root`` with this interpreter, isolated from the user's Jupyter setup; returns
    once ``/api/status`` answers (fails with the server log otherwise)."""
    state = root.parent / f"{root.name}-jupyter"
    for key, settings in LAB_SETTINGS.items():
        path = state / "settings" / f"{key}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = dict(os.environ, PYTHONUNBUFFERED="1", GANINV_FIGURES_DIR=str(root / "figures"))
    for var, name in [
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ]:
        (state / name).mkdir(parents=True, exist_ok=True)
        env[var] = str(state / name)
    port, token, log = free_port(), secrets.token_hex(16), state / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    lab = Lab(root, port, token, proc, log)
    deadline = time.monotonic() + SERVER_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with code {proc.returncode}:\n{lab.log_tail()}", pytrace=False)
        with contextlib.suppress(OSError, ValueError):
            if isinstance(lab.api("status", timeout=5), dict):
                return lab
        if time.monotonic() > deadline:
            stop_lab(lab)
            pytest.fail(f"jupyter lab did not answer in {SERVER_TIMEOUT} s:\n{lab.log_tail()}", pytrace=False)
        time.sleep(0.5)


def stop_lab(lab: Lab) -> None:
    """Shut the server down through its API (it stops its kernels), then end its process group and any
    kernel still alive (kernels run in sessions of their own)."""
    try:
        import psutil

        kernels = psutil.Process(lab.proc.pid).children(recursive=True)
    except Exception:  # psutil missing or the server already gone
        psutil, kernels = None, []
    with contextlib.suppress(Exception):
        lab.api("shutdown", method="POST")
    try:
        lab.proc.wait(20)
    except subprocess.TimeoutExpired:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(lab.proc.pid, sig)
        try:
            lab.proc.wait(10)
            break
        except subprocess.TimeoutExpired:
            continue
    if psutil is not None and kernels:
        alive = [p for p in kernels if p.is_running()]
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(alive, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()


# ---------------------------------------------------------------------------------------------------------
# Notebooks


def prepare_notebook(src: Path, lab: Lab, parameters: dict | None = None) -> str:
    """Copy ``src`` to ``<root>/notebooks/<name>`` without outputs, execution counts or saved widget state,
    with ``parameters`` injected after the ``parameters`` cell (first, if none); return its served path."""
    nb = nbformat.read(src, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if parameters:
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        source = "# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)
    rel = f"notebooks/{src.name}"
    (lab.root / rel).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, lab.root / rel)
    return rel


def find_cell(path: Path, text: str) -> int:
    """Index of the first code cell whose source contains ``text``."""
    cells = nbformat.read(path, as_version=4).cells
    found = [i for i, c in enumerate(cells) if c.cell_type == "code" and text in c.source]
    if not found:
        raise ValueError(f"{path.name}: no code cell contains {text!r}")
    return found[0]


def tiny_explorer_notebook(folder: Path) -> Path:
    """A one-cell notebook showing the explorer of a tiny random 32 px generator (saved next to it) with
    three GANSpace directions."""
    from ganinv.checkpoints import save_generator
    from ganinv.editing import ganspace_directions, save_directions
    from ganinv.models.stylegan2 import Generator

    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        G = Generator(32, 16, 2, channel_multiplier=0.125, channel_max=16).eval()
    save_generator(folder / "generator.pt", G)
    save_directions(folder / "directions.pt", ganspace_directions(G, n=1000, k=3))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# The latent explorer on a tiny random generator"),
        nbformat.v4.new_code_cell(
            "from ganinv.widgets import LatentExplorer\n\n"
            f"explorer = LatentExplorer({str(folder / 'generator.pt')!r}, {str(folder / 'directions.pt')!r}, "
            "n_components=0, display_size=128)\n"
            "explorer.widget"
        ),
    ]
    path = folder / "explorer_tiny.ipynb"
    nbformat.write(nb, path)
    return path


# ---------------------------------------------------------------------------------------------------------
# Driving the page


def notebook_cells(page):
    """The cells of the notebook in the visible tab."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Notebook-cell")


def run_explorer_cell(
    page,
    lab: Lab,
    notebook_path: str,
    cell_index: int,
    *,
    run_above: bool = True,
    timeout: float = CELL_TIMEOUT,
):
    """Open ``notebook_path`` (relative to the served root), wait for its idle kernel, run cells
    0..``cell_index`` (``run_above=False``: only ``cell_index``) by Shift+Enter in command mode, and return
    the cell (a Locator) once it has run and its first widget ``<img>`` shows a picture."""
    from playwright.sync_api import expect

    n_cells = len(nbformat.read(lab.root / notebook_path, as_version=4).cells)
    if not 0 <= cell_index < n_cells:
        raise ValueError(f"{notebook_path} has {n_cells} cells; no cell {cell_index}")
    page.goto(lab.url(f"lab/tree/{notebook_path}", reset=True))
    cells = notebook_cells(page)
    expect(cells, f"{notebook_path} did not show its {n_cells} cells").to_have_count(
        n_cells, timeout=KERNEL_TIMEOUT * 1000
    )
    idle = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"^(?!No Kernel).+ \| Idle$"))
    expect(idle, "no idle kernel in the status bar").to_be_visible(timeout=KERNEL_TIMEOUT * 1000)

    first = 0 if run_above else cell_index
    cells.nth(first).locator(".jp-InputPrompt").click()  # selects the cell
    page.keyboard.press("Escape")  # command mode
    for _ in range(cell_index - first + 1):
        page.keyboard.press("Shift+Enter")  # run the selected cell, select the next
    cell = cells.nth(cell_index)
    prompt, start, queued = cell.locator(".jp-InputPrompt"), time.monotonic(), False
    while not re.fullmatch(r"\[\d+\]:", text := prompt.inner_text().strip()):
        queued |= text == "[*]:"
        waited = time.monotonic() - start
        if text == "[ ]:" and (queued or waited > 5):
            raise AssertionError(f"cell {cell_index} was not run (a cell above failed?)")
        if waited > timeout:
            raise AssertionError(f"cell {cell_index} still not done after {timeout:.0f} s (prompt {text!r})")
        page.wait_for_timeout(250)
    img, start = cell.locator("img.widget-image").first, time.monotonic()
    while not re.match(r"(blob|data):", (img.get_attribute("src") or "") if img.count() else ""):
        if "Traceback (most recent call last)" in " ".join(cell.locator(".jp-OutputArea").all_inner_texts()):
            raise AssertionError(f"cell {cell_index} raised an exception")
        if time.monotonic() - start > WIDGET_TIMEOUT:
            raise AssertionError(f"cell {cell_index} shows no widget picture after {WIDGET_TIMEOUT} s")
        page.wait_for_timeout(250)
    expect(img).to_be_visible()
    return cell


def move_slider(page, cell, label: str | None = None, fraction: float = 0.3) -> str:
    """Drag a FloatSlider's handle by ``fraction`` of its track (towards the side with more room) and
    release; return the new readout. ``label``: the slider's description; None: the first slider right
    after an HTML heading (in LatentExplorer, the first direction slider)."""
    from playwright.sync_api import expect

    if label is None:
        slider = cell.locator(".widget-html + .widget-hslider").first
    else:
        name = page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
        slider = cell.locator(".widget-hslider").filter(has=name).first
    handle, track, readout = (slider.locator(s) for s in (".noUi-handle", ".noUi-base", ".widget-readout"))
    handle.scroll_into_view_if_needed()
    before = readout.inner_text()
    h, t = handle.bounding_box(), track.bounding_box()
    x, y = h["x"] + h["width"] / 2, h["y"] + h["height"] / 2
    dx = fraction * t["width"] * (1 if x < t["x"] + t["width"] / 2 else -1)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=10)
    page.mouse.up()
    expect(readout, f"slider {label or '(first direction)'} did not move").not_to_have_text(before)
    return readout.inner_text()


def image_of(img) -> np.ndarray:
    """The picture an ``<img>`` shows, fetched from its (blob or data) URL in the page, decoded."""
    data = img.evaluate("async (el) => Array.from(new Uint8Array(await (await fetch(el.src)).arrayBuffer()))")
    return np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB"))


def page_report(page, lab: Lab, console: list[str], shot: Path) -> str:
    """What the page, the browser console and the server say, for a failure message."""
    with contextlib.suppress(Exception):
        page.screenshot(path=str(shot), full_page=True)
    outputs = ""
    with contextlib.suppress(Exception):
        texts = page.locator(".jp-OutputArea-output").all_inner_texts()
        outputs = "\n".join(t[-1500:] for t in texts)[-6000:]
    return (
        f"page: {page.url}\nscreenshot: {shot}\n"
        f"--- notebook outputs ---\n{outputs or '(none)'}\n"
        f"--- browser console (last 30) ---\n" + "\n".join(console[-30:]) + "\n"
        f"--- JupyterLab server log (tail) ---\n{lab.log_tail()}"
    )


# ---------------------------------------------------------------------------------------------------------
# Fixtures


def _require_browser() -> None:
    """Fail (not skip) with install instructions when Playwright or Chromium is missing."""
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append(
            "the Python package playwright is missing: `pip install -e '.[dev]'` (or `pip install "
            "playwright`); do not run `playwright install`: this test uses Debian's chromium"
        )
    if not os.access(CHROMIUM, os.X_OK):
        problems.append(
            f"{CHROMIUM} is missing: `sudo apt-get install -y chromium` (`make test` does this), or point "
            "$GANINV_CHROMIUM at a Chromium binary"
        )
    if problems:
        pytest.fail("browser test cannot run:\n- " + "\n- ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
    except Exception as e:
        pw.stop()
        pytest.fail(f"{CHROMIUM} did not start under Playwright: {e}", pytrace=False)
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    server = start_lab(root)
    yield server
    stop_lab(server)


@pytest.fixture
def page(browser, lab):
    """A fresh page (own browser context); afterwards the notebook kernels are shut down."""
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
    lab.shutdown_kernels()


@pytest.fixture
def explain(page, lab, tmp_path):
    """``with explain():`` turns any failure into an AssertionError that tells the page's, the browser
    console's and the server's story (and saves a screenshot of the page)."""
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

    @contextlib.contextmanager
    def explained():
        try:
            yield
        except Exception as e:
            report = page_report(page, lab, console, tmp_path / "failure.png")
            what = str(e).split("\nAria snapshot:")[0][:3000]  # Playwright appends the whole page tree
            raise AssertionError(f"{type(e).__name__}: {what}\n{report}") from e

    return explained


@pytest.fixture
def figures_dir(tmp_path) -> Path:
    """Where screenshots go: $GANINV_FIGURES_DIR when set, else the test's tmp_path."""
    path = Path(os.environ["GANINV_FIGURES_DIR"]) if os.environ.get("GANINV_FIGURES_DIR") else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------------------
# Tests


def check_explorer(
    page, lab: Lab, explain, notebook_path: str, cell_index: int, screenshot: Path, **run
) -> dict:
    """Run the explorer cell, move the first direction slider, and assert that the picture changes; save a
    screenshot of the cell's output. Returns timings (s) and the pictures."""
    from playwright.sync_api import expect

    t0 = time.monotonic()
    with explain():
        cell = run_explorer_cell(page, lab, notebook_path, cell_index, **run)
        t_shown = time.monotonic()
        img = cell.locator("img.widget-image").first
        src, before = img.get_attribute("src"), image_of(img)
        value = move_slider(page, cell)
        expect(img, "the picture did not change after the slider moved").not_to_have_attribute(
            "src", src, timeout=WIDGET_TIMEOUT * 1000
        )
        after = image_of(img)
        t_changed = time.monotonic()
        cell.locator(".jp-OutputArea").screenshot(path=str(screenshot))
    assert before.ndim == 3 and before.shape[0] == before.shape[1] and before.shape == after.shape
    assert not np.array_equal(before, after), f"slider at {value}: new picture URL, same pixels"
    return dict(shown=t_shown - t0, changed=t_changed - t_shown, before=before, after=after, value=value)


def test_explorer_slider_changes_picture_in_jupyterlab(page, lab, explain, tmp_path):
    """The tiny-generator notebook: the explorer appears, a GANSpace slider drag re-renders the picture
    (its screenshot stays in tmp_path: the figure of the course is notebook 04's)."""
    rel = prepare_notebook(tiny_explorer_notebook(lab.root / "tiny"), lab)
    shot = tmp_path / "explorer_browser_tiny.png"
    out = check_explorer(page, lab, explain, rel, find_cell(lab.root / rel, "LatentExplorer("), shot)
    assert out["before"].shape == (32, 32, 3)
    with Image.open(shot) as im:
        assert im.width > 300 and im.height > 300, im.size
    print(f"explorer shown after {out['shown']:.1f} s, picture changed {out['changed']:.1f} s after the drag")


@pytest.mark.skipif(not NOTEBOOK_04.exists(), reason="notebooks/04_editing.ipynb is not written yet")
def test_notebook_04_explorer_in_jupyterlab(page, lab, explain, figures_dir):
    """The explorer cell of 04_editing (SMOKE parameters, cells above run first); the screenshot is
    ``04_explorer_browser.png``."""
    rel = prepare_notebook(NOTEBOOK_04, lab, {"SMOKE": True, "DEVICE": "cpu"})
    index = find_cell(lab.root / rel, "LatentExplorer(")
    shot = figures_dir / "04_explorer_browser.png"
    out = check_explorer(page, lab, explain, rel, index, shot, timeout=900)
    print(f"explorer shown after {out['shown']:.1f} s, picture changed {out['changed']:.1f} s after the drag")
