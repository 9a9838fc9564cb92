"""A pure spec and a fast plan: spec, resolve, grid expansion, `run-grid --plan` and `imacsr models`
import no torch (nor torchvision, pandas, matplotlib). Each check runs in a fresh interpreter and reads
its sys.modules after the work is done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "pandas", "matplotlib")

# Runs the CLI in-process (as `imacsr ...` would), then prints the heavy modules that got imported.
CLI = """
import json, sys
from imacsr_cli.cli.app import app
try:
    app(sys.argv[1:], prog_name="imacsr")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"exit": code, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in %r)}),
      file=sys.stderr)
""" % (HEAVY,)

LIBRARY = """
import json, sys
from imacsr_cli.spec import RunSpec, resolve
from imacsr_cli.spec.grid import GridSpec
for path in sys.argv[1:]:
    GridSpec.load(path).expand()
resolve(RunSpec.from_dict({"model": {"name": "seaformer"}, "data": {"name": "camvid"}}))
print(json.dumps({"exit": 0, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in %r)}),
      file=sys.stderr)
""" % (HEAVY,)


def run(script: str, args: list[str], tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IMACSR_DB": str(tmp_path / "imacsr.db"),
           "IMACSR_DATA": str(tmp_path / "data")}
    r = subprocess.run([sys.executable, "-c", script, *args], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    return {**json.loads(r.stderr.strip().splitlines()[-1]), "stdout": r.stdout}


@pytest.mark.parametrize("args", [
    ["run-grid", str(ROOT / "experiments/table_iv.toml"), "--plan"],
    ["run-grid", str(ROOT / "experiments/demo.toml"), "--plan"],
    ["models"],
    ["models", "--json", "--classes", "11"],
    ["spec", "show", str(ROOT / "experiments/runs/tiny.toml")],
], ids=["plan table_iv", "plan demo", "models", "models --json", "spec show"])
def test_the_command_imports_no_torch(args, tmp_path):
    out = run(CLI, args, tmp_path)
    assert out["heavy"] == [], f"imacsr {' '.join(args)} imported {out['heavy'][:5]}"
    assert out["exit"] in (0, None, 2)  # table_iv exits 2: its data roots are not there (said in the plan)


def test_the_plan_says_what_it_found(tmp_path):
    out = run(CLI, ["run-grid", str(ROOT / "experiments/demo.toml"), "--plan"], tmp_path)
    assert out["exit"] in (0, None)
    assert "24 runs — 24 new" in out["stdout"]


def test_models_lists_sizes_from_the_metadata(tmp_path):
    out = run(CLI, ["models", "--json", "--classes", "19"], tmp_path)
    rows = {(r["model"], r["variant"]): r["parameters"] for r in json.loads(out["stdout"])}
    # The sizes the README and specs/models.md give (checked against built models in tests/models).
    assert rows[("deeplabv3plus", "smp")] == 12_333_923
    assert rows[("topformer", "tiny")] == 1_372_755
    assert rows[("seaformer", "small")] == 3_973_219


def test_spec_resolve_and_expansion_import_no_torch(tmp_path):
    grids = [str(p) for p in sorted((ROOT / "experiments").rglob("*.toml")) if "runs" not in p.parts]
    out = run(LIBRARY, grids, tmp_path)
    assert out["heavy"] == []
