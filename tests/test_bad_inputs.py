"""Bad input gets one clear line and the right exit status, nothing is written silently wrong, and no run is
thrown away: the ``ganinv`` command's argument checks (before any work), devices, counts, output locations,
masks, edits, non-finite outputs, existing run folders, leftovers of interrupted writes, a full disk, and
``--debug``. (Corrupt and oversized checkpoints: ``test_bad_checkpoints.py``.)"""

from __future__ import annotations

import copy
import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganinv.checkpoints import save_generator
from ganinv.cli import main
from ganinv.devices import resolve_device
from ganinv.training import contrastive, encoders, gan, inpainting, sfn
from ganinv.training.loop import STATE_FILE

pytestmark = pytest.mark.usefixtures("one_thread")
NO_GPU = pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message for a machine without a GPU"
)


def run(args: list[str], capsys) -> tuple[int, str]:
    """Exit status and message of ``ganinv ARGS`` that fails (argparse: 2 and its stderr; ours: 1)."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    code = info.value.code
    return (1, code) if isinstance(code, str) else (code, capsys.readouterr().err)


def fails(args: list[str], capsys, status: int, *needles: str) -> str:
    code, message = run(args, capsys)
    assert code == status, (code, message)
    last = message.strip().splitlines()[-1]  # one line, no traceback
    assert "Traceback" not in message and last.startswith("ganinv"), message
    for needle in needles:
        assert needle in last, (needle, last)
    return last


@pytest.fixture
def files(tmp_path):
    """A face, masks of several kinds and a plain file, in ``tmp_path``."""
    face = np.full((64, 64, 3), 128, np.uint8)
    Image.fromarray(face).save(tmp_path / "face.png")
    hole = np.full((64, 64), 255, np.uint8)
    hole[20:40, 20:40] = 0
    Image.fromarray(hole).save(tmp_path / "mask.png")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "white.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "black.png")
    Image.fromarray((hole // 255).astype(np.uint8)).save(tmp_path / "zero_one.png")
    Image.fromarray(np.full((64, 32), 255, np.uint8)).save(tmp_path / "tall.png")
    (tmp_path / "file.txt").write_text("not a folder")
    return tmp_path


# -- numbers that argparse refuses (status 2, before anything is loaded) -----------------------------------

ARGPARSE_CASES = [
    (["sample", "-n", "-1"], "-n: must be at least 1"),
    (["sample", "-n", "0"], "-n: must be at least 1"),
    (["sample", "-n", "many"], "expected a whole number"),
    (["sample", "-n", "2.5"], "expected a whole number"),
    (["sample", "--truncation", "nan"], "finite number"),
    (["sample", "--truncation", "inf"], "finite number"),
    (["sample", "--truncation=-inf"], "finite number"),
    (["sample", "--truncation", "half"], "expected a number"),
    (["sample", "--nrow", "0"], "--nrow: must be at least 1"),
    (["sample", "--noise-mode", "loud"], "invalid choice"),
    (["invert", "x.png", "--out", "o", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["invert", "x.png", "--out", "o", "--steps", "-3"], "--steps: must be at least 1"),
    (["invert", "x.png", "--out", "o", "--lr", "nan"], "--lr: must be a finite number"),
    (["invert", "x.png", "--out", "o", "--method", "magic"], "invalid choice"),
    (["invert", "x.png"], "--out"),
    (["inpaint", "x.png", "--mask", "m.png", "--out", "o", "-n", "0"], "-n: must be at least 1"),
    (["inpaint", "x.png", "--mask", "m.png", "--out", "o", "-n", "-5"], "-n: must be at least 1"),
    (["inpaint", "x.png", "--mask", "m.png", "--out", "o", "--stage", "3"], "invalid choice"),
    (["inpaint", "x.png", "--out", "o"], "--mask"),
    (["train", "sfn", "--lr", "nan"], "--lr: must be a finite number"),
    (["train", "sfn", "--temperature", "inf"], "--temperature: must be a finite number"),
    (["train", "sfn", "--resume", "maybe"], "expected a boolean"),
    (["train", "sfn", "--batch-size", "four"], "invalid int value"),
    (["train", "gan", "--lr", "nan"], "--lr: must be a finite number"),
    (["train", "gan", "--r1-gamma=-inf"], "--r1-gamma: must be a finite number"),
    (["train", "clcae", "--lambda-mse", "nan"], "--lambda-mse: must be a finite number"),
    (["train", "inpaint", "--lr", "inf"], "--lr: must be a finite number"),
    (["train", "contrastive", "--lr", "nan"], "--lr: must be a finite number"),
    (["train", "sfn", "--preset", "huge"], "invalid choice"),
    (["train", "directions", "-n", "0"], "must be at least 1"),
    (["train", "directions", "--components", "0"], "--components: must be at least 1"),
    (["train", "directions", "--ambiguous", "nan"], "--ambiguous: must be a finite number"),
    (["eval", "sfn", "-n", "-1"], "-n: must be at least 1"),
    (["eval", "reconstruction", "--optim-steps", "0"], "--optim-steps: must be at least 1"),
    (["eval", "editing", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["eval", "editing", "--strengths", "1", "nan"], "--strengths: must be a finite number"),
    (["eval", "inpainting", "--samples", "0"], "--samples: must be at least 1"),
    (["eval", "contrastive", "--truncation", "nan"], "--truncation: must be a finite number"),
    (["eval", "gan", "-n", "0"], "-n: must be at least 1"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(
    "args,needle", ARGPARSE_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_argparse_refuses_bad_numbers(args, needle, capsys):
    fails(args, capsys, 2, needle)


# -- devices (status 1, before anything is loaded) ---------------------------------------------------------

DEVICE_COMMANDS = [
    ["sample"],
    ["invert", "x.png", "--out", "o"],
    ["inpaint", "x.png", "--mask", "m.png", "--out", "o"],
    ["train", "sfn", "--preset", "tiny"],
    ["train", "gan", "--preset", "tiny"],
    ["train", "directions"],
    ["eval", "sfn"],
]


@pytest.mark.parametrize("command", DEVICE_COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:x", "metal"])
def test_unknown_devices_are_refused_by_every_command(command, device, capsys):
    fails([*command, "--device", device], capsys, 1, "device", "use auto, cpu, cuda or cuda:N")


@NO_GPU
@pytest.mark.parametrize("command", DEVICE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_cuda_without_a_gpu_is_one_line(command, capsys):
    fails([*command, "--device", "cuda"], capsys, 1, "no CUDA GPU is visible", "use --device cpu or auto")


@pytest.mark.parametrize("spec", ["tpu", "", "  ", "cuda:x", None, 3])
def test_resolve_device_names_the_problem(spec):
    with pytest.raises(ValueError, match="device"):
        resolve_device(spec)


def test_resolve_device_accepts_the_documented_names():
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_device(" CPU ") == torch.device("cpu")


# -- counts and output locations ----------------------------------------------------------------------------


def test_huge_counts_are_refused_unless_asked(files, capsys):
    fails(["sample", "-n", "100000"], capsys, 1, "above the limit of 1024", "--no-limit")
    args = ["inpaint", files / "face.png", "--mask", files / "mask.png", "--out", files / "o", "-n", "100000"]
    fails(args, capsys, 1, "above the limit of 256", "--no-limit")
    assert not (files / "o").exists()


OUT_CASES = [
    (["sample", "--out", "{d}"], "is a folder"),
    (["sample", "--out", "{d}/noext"], "give a file extension"),
    (["sample", "--out", "{d}/file.txt/x.png"], "file.txt is a file, not a folder"),
    (
        ["inpaint", "{d}/face.png", "--mask", "{d}/mask.png", "--out", "{d}/file.txt"],
        "is a file, not a folder",
    ),
    (["invert", "{d}/face.png", "--out", "{d}/file.txt"], "is a file, not a folder"),
    (["convert", "synthfaces64", "{d}/file.txt"], "is a file, not a folder"),
    (["train", "sfn", "--preset", "tiny", "--out-dir", "{d}/file.txt"], "is a file, not a folder"),
    (["train", "directions", "--out", "{d}"], "--out {d} is a folder"),
    (["eval", "sfn", "--json", "{d}"], "--json {d} is a folder"),
    (["eval", "sfn", "--json", "{d}/file.txt/eval.json"], "file.txt is a file, not a folder"),
    (["eval", "gan", "--json", "{d}/noext"], "give a file extension (.json"),
    (["eval", "editing", "--figure", "{d}"], "--figure {d} is a folder"),
    (["eval", "inpainting", "--figure", "{d}/plot"], "give a file extension (.png"),
]


@pytest.mark.parametrize(
    "args,needle", OUT_CASES, ids=[a[0] + "-" + str(i) for i, (a, _) in enumerate(OUT_CASES)]
)
def test_unusable_output_locations_are_refused_before_work(args, needle, files, capsys):
    fails([a.format(d=files) for a in args], capsys, 1, needle.format(d=files))
    assert (files / "file.txt").read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(files, capsys):
    ro = files / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    fails(["sample", "-n", "1", "--out", ro / "x.png"], capsys, 1, "permission denied")


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path):
    def small_files() -> None:  # writes above 4 KB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "samples.png"
    proc = subprocess.run([sys.executable, "-m", "ganinv", "sample", "-n", "4", "--out", str(out)],
                          preexec_fn=small_files, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == f"ganinv sample: error: {out}: cannot write it (file too large)"
    assert os.listdir(tmp_path) == []


# -- edits, masks and non-finite outputs ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["smiling", "smiling=", "=3", "smiling=abc", "smiling=nan", "smiling=inf",
                                  "smiling=1e6", "smiling=-1e6", "smiling=51"])  # fmt: skip
def test_bad_edit_specs(spec, files, capsys):
    args = ["inpaint", files / "face.png", "--mask", files / "mask.png", "--out", files / "o", "--edit", spec]
    last = fails(args, capsys, 1, f"--edit {spec!r}")
    assert ("expected ATTRIBUTE=SIGMAS" in last) or ("leaves the generator's range" in last)


MASK_CASES = [
    ("white.png", "has no hole"),
    ("tall.png", "not square"),
    ("missing.png", "no such file"),
    ("file.txt", "cannot read it as an image"),
]


@pytest.mark.parametrize("mask,needle", MASK_CASES)
def test_unusable_masks(mask, needle, files, capsys):
    args = ["inpaint", files / "face.png", "--mask", files / mask, "--out", files / "o", "-n", "1"]
    fails(args, capsys, 1, needle)
    assert not list((files / "o").glob("result_*.png"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "mask,warning", [("zero_one.png", "only the values 0 and 1"), ("black.png", "all hole")]
)
def test_odd_masks_run_with_a_one_line_warning(mask, warning, files, capsys):
    main(
        [
            "inpaint",
            str(files / "face.png"),
            "--mask",
            str(files / mask),
            "--out",
            str(files / "o"),
            "-n",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert "ganinv inpaint: warning: " in err and warning in err and "Traceback" not in err
    assert sorted(p.name for p in (files / "o").iterdir()) == ["erased.png", "grid.png", "result_00.png",
                                                                "result_01.png"]  # fmt: skip


def test_a_zero_one_mask_is_read_as_binary(files):
    from ganinv.data.masks import load_mask

    with pytest.warns(UserWarning, match="0 and 1"):
        read = load_mask(files / "zero_one.png")
    plain = load_mask(files / "mask.png")
    torch.testing.assert_close(read, plain)


def test_a_generator_with_nan_weights_writes_nothing(G, tmp_path, capsys):
    broken = tmp_path / "nan.pt"
    G2 = copy.deepcopy(G)
    with torch.no_grad():
        next(p for n, p in G2.named_parameters() if "conv" in n).fill_(float("nan"))
    save_generator(broken, G2)
    out = tmp_path / "s.png"
    last = fails(["sample", "--checkpoint", broken, "-n", "2", "--out", out], capsys, 1)
    assert "non-finite" in last or "NaN" in last
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["nan.pt"]


def test_images_are_written_with_the_usual_permissions(tmp_path):
    from ganinv.data.images import save_image

    old = os.umask(0o022)
    try:
        path = save_image(torch.zeros(3, 8, 8), tmp_path / "x.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# -- runs are never thrown away ------------------------------------------------------------------------

TRAINERS = {
    "sfn": (sfn.preset, ["train", "sfn", "--preset", "tiny"]),
    "gan": (gan.preset, ["train", "gan", "--preset", "tiny"]),
    "contrastive": (contrastive.preset, ["train", "contrastive", "--preset", "tiny"]),
    "clcae": (encoders.preset, ["train", "clcae", "--preset", "tiny"]),
    "inpaint": (inpainting.preset, ["train", "inpaint", "--preset", "tiny"]),
}


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
@pytest.mark.parametrize("field", ["total-steps", "batch-size", "checkpoint-every", "log-every"])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_counts_below_one_are_refused_by_every_trainer(trainer, field, value, tmp_path, capsys):
    args = [*TRAINERS[trainer][1], "--out-dir", tmp_path / "run", f"--{field}", value]
    fails(args, capsys, 1, f"{field.replace('-', '_')} must be")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
def test_an_existing_run_is_not_replaced_without_resume_or_overwrite(trainer, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / STATE_FILE).write_bytes(b"the state of a long run")
    fails([*TRAINERS[trainer][1], "--out-dir", run_dir], capsys, 1, "already holds a run", "--resume true",
          "--overwrite true")  # fmt: skip
    fails([*TRAINERS[trainer][1], "--out-dir", run_dir, "--resume", "true", "--overwrite", "true"], capsys, 1,
          "contradict")  # fmt: skip
    assert (run_dir / STATE_FILE).read_bytes() == b"the state of a long run"


def test_overwrite_starts_over_and_resume_removes_leftovers_of_a_killed_save(tmp_path):
    cfg = sfn.preset("tiny", out_dir=str(tmp_path), total_steps=2, progress=False)
    sfn.train(cfg)
    leftover = tmp_path / f".{STATE_FILE}.k1ll3d.tmp"  # what a kill -9 inside atomic_save leaves
    leftover.write_bytes(b"")
    sfn.train(sfn.preset("tiny", out_dir=str(tmp_path), total_steps=3, resume=True, progress=False))
    assert not leftover.exists()
    assert torch.load(tmp_path / STATE_FILE, weights_only=True)["step"] == 3
    sfn.train(sfn.preset("tiny", out_dir=str(tmp_path), total_steps=1, overwrite=True, progress=False))
    assert torch.load(tmp_path / STATE_FILE, weights_only=True)["step"] == 1


# -- other commands -------------------------------------------------------------------------------------


def test_a_failed_convert_leaves_no_folder(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 64)
    fails(["convert", bad, tmp_path / "out"], capsys, 1, "bad.pt")
    fails(["convert", tmp_path / "missing.pt", tmp_path / "out"], capsys, 1, "no such checkpoint file")
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="unknown device"):
        main(["sample", "--device", "tpu", "--debug"])
    os.environ["GANINV_DEBUG"] = "1"
    try:
        with pytest.raises(ValueError, match="unknown device"):
            main(["sample", "--device", "tpu"])
    finally:
        del os.environ["GANINV_DEBUG"]


def test_python_dash_m_ganinv_is_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "ganinv", "sample", "-n", "0"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "ganinv sample: error: argument -n: must be at least 1" in proc.stderr


def test_an_unexpected_error_is_one_line_that_points_to_debug(monkeypatch, capsys):
    import ganinv.cli as cli

    def boom(args):
        raise KeyError("surprise")

    monkeypatch.setattr(cli, "cmd_info", boom)
    with pytest.raises(SystemExit) as info:
        cli.main(["info", "x"])
    assert "KeyError" in info.value.code and "--debug" in info.value.code


NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_check_their_device_parameter(notebook):
    """A bad ``DEVICE`` in the parameters cell stops at the setup cell with resolve_device's message."""
    import nbformat

    code = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    assert "start(DEVICE" in code and "DEVICE ==" not in code  # ganinv.notebook.start resolves it


def test_kill_during_a_save_keeps_the_last_state_and_the_next_start_cleans_up(tmp_path):
    """A real ``kill -9`` while ``atomic_save`` writes: the previous training state stays whole, and the
    temporary file it leaves is removed when the run is resumed."""
    cfg = sfn.preset("tiny", out_dir=str(tmp_path), total_steps=2, progress=False)
    sfn.train(cfg)
    before = (tmp_path / STATE_FILE).read_bytes()
    writer = (  # a save that writes half its bytes, then waits to be killed
        "import sys, time, torch\n"
        "from ganinv.checkpoints import atomic_save\n"
        "def slow(obj, f, *a, **k):\n"
        "    f.write(b'x' * 4096); f.flush(); print('writing', flush=True); time.sleep(60)\n"
        "torch.save = slow\n"
        f"atomic_save({{'step': 99}}, {str(tmp_path / STATE_FILE)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait(timeout=30)
    leftovers = list(tmp_path.glob(".*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size == 4096
    assert (tmp_path / STATE_FILE).read_bytes() == before  # the kill never reached the state file
    sfn.train(sfn.preset("tiny", out_dir=str(tmp_path), total_steps=3, resume=True, progress=False))
    assert not list(tmp_path.glob(".*.tmp"))
    assert torch.load(tmp_path / STATE_FILE, weights_only=True)["step"] == 3
