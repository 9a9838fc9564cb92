"""A CPU trainer keeps freed memory for the next step: a large block freed and allocated again is
served from pages already mapped (no page faults), unless a MALLOC_* setting says otherwise.

Page faults are counted by the kernel (ru_minflt), so these are counts, not timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")

# A step's pattern, reduced: allocate and touch a 64 MiB tensor (torch's CPU allocator is malloc), make
# some small objects, free the tensor; 24 times. Reports each time's page faults: 16384 pages are
# 16384 faults when the block is a fresh mapping, ~0 when the heap's pages are reused. The heap
# needs a few rounds to settle (an aligned block does not always fit the hole its predecessor left).
PROBE = """
import json, resource, sys, torch
from imacsr_cli.train.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
faults = []
for _ in range(24):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(16 * 2**20).fill_(1.0)
    small = [object() for _ in range(1000)]
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del t
print(json.dumps({"kept": kept, "faults": faults[-4:]}))
"""


def _env(**extra: str) -> dict[str, str]:
    """This environment without any MALLOC_* setting (glibc's defaults), the package importable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    return {**clean, "PYTHONPATH": str(ROOT), **extra}


def _probe(mode: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env=_env(**env))
    return json.loads(out.stdout)


def test_freed_memory_is_reused_without_page_faults():
    default = _probe("glibc")
    assert default["kept"] is False and all(f >= 16384 for f in default["faults"])  # remapped every time
    kept = _probe("keep")
    assert kept["kept"] is True and all(f < 200 for f in kept["faults"])


def test_a_malloc_setting_in_the_environment_is_left_alone():
    got = _probe("keep", MALLOC_ARENA_MAX="2")
    assert got["kept"] is False and all(f >= 16384 for f in got["faults"])


def test_a_cpu_run_says_it_keeps_freed_memory(tmp_path):
    spec = {"model": {"name": "deeplabv3plus"},
            "data": {"name": "synthetic", "train_size": [32, 32], "eval_size": [32, 32], "num_train": 2, "num_val": 1},
            "train": {"epochs": 1, "batch_size": 2}, "method": {"name": "conventional"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "imacsr_cli.train", str(tmp_path)], capture_output=True, text=True,
                          env=_env(CUDA_VISIBLE_DEVICES=""))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CPU memory: freed blocks kept for reuse" in (tmp_path / "train.log").read_text()
