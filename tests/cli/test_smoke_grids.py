"""The shipped smoke grids run to completion through the real CLI: every model family (issue 6) and
every real dataset layout, from trees written by `imacsr data fake` (issue 5)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imacsr(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imacsr_cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def _all_succeeded(cwd: Path, grid: str) -> list[dict]:
    out = _imacsr("status", grid, "--runs", "--json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)["runs"]
    assert runs and {r["state"] for r in runs} == {"succeeded"}
    return runs


@pytest.mark.slow
def test_grid_over_the_three_fake_dataset_trees(tmp_path):
    for name in ("cityscapes", "camvid", "synthiasf"):
        made = _imacsr("data", "fake", "--dataset", name, "--out", f"data/{name}", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
    grid = str(ROOT / "experiments/smoke/datasets.toml")
    done = _imacsr("run-grid", grid, "--jobs", "2", cwd=tmp_path, env={"IMACSR_DATA": "data"})
    assert done.returncode == 0, done.stdout + done.stderr
    runs = _all_succeeded(tmp_path, "smoke_datasets")
    assert sorted(r["dataset"] for r in runs) == ["camvid", "cityscapes", "synthiasf"]


@pytest.mark.slow
def test_grid_over_the_three_model_families(tmp_path):
    done = _imacsr("run-grid", str(ROOT / "experiments/smoke/models.toml"), "--jobs", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = _all_succeeded(tmp_path, "smoke_models")
    assert sorted(r["model"] for r in runs) == ["deeplabv3plus", "seaformer", "topformer"]
    assert {r["num_points"] for r in runs} == {3}
