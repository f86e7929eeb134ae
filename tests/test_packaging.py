"""The project's packaging files agree with each other and with the README."""

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    listed = {line.strip()[2:] for line in lines[start + 1 :] if line.strip().startswith("- ")}
    listed.discard("-e .")
    assert {_name(r) for r in listed} == {_name(r) for r in wanted}
    assert listed == wanted, "version specifiers differ between environment.yml and pyproject.toml"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_pytest_markers_declared():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    names = {m.split(":")[0] for m in cfg["markers"]}
    assert {"cuda", "slow"} <= names


def test_data_stays_under_100_mb():
    files = [p for p in (ROOT / "data").rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    biggest = max(files, key=lambda p: p.stat().st_size)
    assert total < 100 * 2**20, f"data/ holds {total / 2**20:.1f} MiB; the largest file is {biggest}"


def test_no_tracked_file_points_outside_the_repository():
    """The papers' notes live in docs/; nothing may cite the private notes beside a working copy, which a
    person who clones the repository does not have."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    needle = "shared" + "/"  # split so that this file does not match itself
    found = subprocess.run(["git", "grep", "-n", "-I", needle], cwd=root, capture_output=True, text=True)
    assert found.returncode == 1, f"tracked files mention {needle}:\n{found.stdout[:2000]}"
    for cited in ("docs/papers/clcae.md", "docs/papers/diverse_inpainting.md", "docs/stylegan2.md"):
        assert (root / cited).is_file(), cited


def test_evaluators_never_import_the_trainers():
    """Evaluation depends on models, data and metrics only; the trainers import their end-of-run evaluation
    from ganinv.eval, never the other way round (a cycle would make every evaluator load the trainers)."""
    import ast

    offenders = []
    for path in sorted((ROOT / "ganinv" / "eval").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):  # "from ..training import x" (level 2) or absolute
                module = node.module or ""
                if (node.level == 2 and module.startswith("training")) or module.startswith(
                    "ganinv.training"
                ):
                    offenders.append(f"{path.name}: {'.' * node.level}{module}")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.name}: {a.name}" for a in node.names if a.name.startswith("ganinv.training")
                ]
    assert not offenders, offenders
