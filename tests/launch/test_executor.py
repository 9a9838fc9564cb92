"""Slots and the local executor: environment of a trainer, process groups, pid checks."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from imacsr_cli.errors import ImacsrError
from imacsr_cli.launch.executor import LocalExecutor, Slot, parse_gpus, pid_alive, plan_slots
from imacsr_cli.spec.paths import RunPaths


def test_cpu_slots_share_the_cores():
    slots = plan_slots(jobs=2, gpus=[], cpu_count=8)
    assert [(s.name, s.env()) for s in slots] == [
        ("cpu#0", {"CUDA_VISIBLE_DEVICES": "", "IMACSR_THREADS": "4"}),
        ("cpu#1", {"CUDA_VISIBLE_DEVICES": "", "IMACSR_THREADS": "4"}),
    ]
    assert plan_slots(jobs=4, gpus=[], cpu_count=2)[0].threads == 1


def test_gpu_slots_per_gpu():
    slots = plan_slots(gpus=["0", "1"], per_gpu=2, cpu_count=8)
    assert [s.name for s in slots] == ["gpu0#0", "gpu0#1", "gpu1#2", "gpu1#3"]
    # Each GPU slot's data pipeline gets a quarter of the 8 cores (data.workers = -1).
    assert slots[2].env() == {"CUDA_VISIBLE_DEVICES": "1", "IMACSR_THREADS": "2"}
    assert len(plan_slots(jobs=3, gpus=["0", "1"], per_gpu=2)) == 3


def test_default_uses_visible_gpus_else_one_cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert [s.gpu for s in plan_slots()] == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert [s.name for s in plan_slots()] == ["cpu#0"]


def test_parse_gpus():
    assert parse_gpus(None) is None
    assert parse_gpus("0, 1") == ["0", "1"]
    assert parse_gpus("cpu") == []
    with pytest.raises(ImacsrError):
        parse_gpus("a,b")
    with pytest.raises(ImacsrError):
        plan_slots(jobs=0)


def test_local_job_runs_in_its_own_group_with_slot_env(tmp_path):
    paths = RunPaths.of(tmp_path, "r1")
    script = (
        "import os, sys, time\n"
        "open(sys.argv[-1] + '/env.txt', 'w').write(' '.join([os.environ['CUDA_VISIBLE_DEVICES'] or '-',"
        " os.environ['IMACSR_THREADS'], os.environ['IMACSR_PARENT_PID'], str(os.getpgid(0) == os.getpid())]))\n"
        "time.sleep(60)\n"
    )

    class _Exec(LocalExecutor):
        def command(self, p):
            return [sys.executable, "-c", script, str(p.root)]

    job = _Exec([Slot(0, threads=3)]).submit("r1", paths, Slot(0, threads=3))
    deadline = time.time() + 10
    while not (paths.root / "env.txt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    assert (paths.root / "env.txt").read_text() == f"- 3 {os.getpid()} True"
    assert job.poll() is None and pid_alive(job.pid)
    job.signal(signal.SIGTERM)
    assert job.wait(10) == -signal.SIGTERM
    assert not pid_alive(job.pid)
    assert (paths.root / "trainer.out").read_text().startswith("--- ")
