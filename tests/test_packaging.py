"""What an installed vetrina holds: ``setup.py build_py`` (the step of a wheel build that
collects Python files and package data, without compiling anything) must carry every file the
package reads at run time, so that a wheel install works like the source tree: the CUDA
sources NVRTC compiles on first use, the shipped pipelines and the zoo checkpoints."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = [  # (folder in the source tree, glob, folder in the installed package)
    ("kernels/cuda", "*.cu", "vetrina/kernels/cuda"),
    ("kernels/cuda", "*.cuh", "vetrina/kernels/cuda"),
    ("engine/pipelines", "*.yaml", "vetrina/pipelines"),
    ("models/zoo", "*.pt", "vetrina/models/zoo"),
]


def _tracked_files() -> list[str]:
    res = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        pytest.skip(f"not a git checkout ({res.stderr.strip()[:200]})")
    return [f for f in res.stdout.split("\0") if f]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """build_py run in a copy of the tracked files: in the checkout itself an editable
    install's egg-info (SOURCES.txt) would smuggle in files that package_data misses."""
    tree = tmp_path_factory.mktemp("tree")
    for name in _tracked_files():
        src = ROOT / name
        if src.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / name)
    out = tmp_path_factory.mktemp("build-lib")
    res = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return out


@pytest.mark.parametrize(("src", "pattern", "dst"), DATA, ids=lambda v: str(v))
def test_package_data_is_installed(built, src, pattern, dst):
    files = sorted(p.name for p in (ROOT / src).glob(pattern))
    assert files, f"nothing matches {src}/{pattern} in the source tree"
    installed = sorted(p.name for p in (built / dst).glob(pattern))
    assert installed == files


def test_every_cuda_source_is_installed(built):
    from vetrina.kernels import gpu

    for name in gpu.SOURCES:
        assert (built / "vetrina/kernels/cuda" / f"{name}.cu").is_file(), name
