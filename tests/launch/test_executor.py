"""Slots and the local executor: environment of a trainer, process groups, pid checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imacsr_cli.errors import ImacsrError
from imacsr_cli.launch.executor import LocalExecutor, Slot, parse_gpus, pid_alive, plan_slots, trainer_command
from imacsr_cli.rundir import RunPaths, codes, package_root, read_events


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


def _wait(predicate, what: str, timeout: float = 300.0):
    """Poll until ``predicate()`` holds: the bound only turns a hang into a failure, it never measures."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_local_job_runs_in_its_own_group_with_slot_env(tmp_path):
    paths = RunPaths.of(tmp_path, "r1")
    # The child writes env.txt under another name and renames it: once it exists, it is whole.
    script = (
        "import os, sys, time\n"
        "open(sys.argv[-1] + '/env.tmp', 'w').write(' '.join([os.environ['CUDA_VISIBLE_DEVICES'] or '-',"
        " os.environ['IMACSR_THREADS'], os.environ['IMACSR_PARENT_PID'], str(os.getpgid(0) == os.getpid())]))\n"
        "os.replace(sys.argv[-1] + '/env.tmp', sys.argv[-1] + '/env.txt')\n"
        "time.sleep(600)\n"
    )

    class _Exec(LocalExecutor):
        def command(self, p):
            return [sys.executable, "-c", script, str(p.root)]

    job = _Exec([Slot(0, threads=3)]).submit("r1", paths, Slot(0, threads=3))
    _wait(lambda: (paths.root / "env.txt").exists() or job.poll() is not None, "env.txt")
    assert (paths.root / "env.txt").read_text() == f"- 3 {os.getpid()} True"
    assert job.poll() is None and pid_alive(job.pid)
    job.signal(signal.SIGTERM)
    assert job.wait(300) == -signal.SIGTERM
    assert not pid_alive(job.pid)
    assert (paths.root / "trainer.out").read_text().startswith("--- ")


def _decoy_checkout(root: Path, marker: Path) -> None:
    """A folder holding another ``imacsr_cli`` (as a second checkout would): importing it leaves a
    marker and exits 42."""
    code = f"open({str(marker)!r}, 'w').write('decoy')\nraise SystemExit(42)\n"
    (root / "imacsr_cli" / "train").mkdir(parents=True)
    (root / "imacsr_cli" / "__init__.py").write_text(code)
    (root / "imacsr_cli" / "train" / "__init__.py").write_text(code)
    (root / "imacsr_cli" / "train" / "__main__.py").write_text(code)


@pytest.mark.parametrize("version", [None, (3, 10)], ids=["this-python", "python3.10-bootstrap"])
def test_trainer_runs_the_schedulers_code_from_inside_another_checkout(tmp_path, monkeypatch, version):
    decoy, marker = tmp_path / "other-checkout", tmp_path / "decoy-imported"
    _decoy_checkout(decoy, marker)
    paths = RunPaths.of(tmp_path / "runs", "r1")
    paths.root.mkdir(parents=True)
    paths.spec.write_text("{not json")  # the real trainer refuses it at once: exit 2, reason bad_spec

    class _Exec(LocalExecutor):
        def command(self, p):
            return trainer_command(self.python, p.root, package_root(), version)

    monkeypatch.chdir(decoy)  # run-grid started inside the other checkout
    job = _Exec([Slot(0, threads=1)]).submit("r1", paths, Slot(0, threads=1))
    assert job.wait(600) == codes.EXIT_BAD_SPEC, (paths.stdout.read_text(), paths.log.read_text())
    assert not marker.exists()
    end = read_events(paths.events)[0][-1]
    assert (end.kind, end.reason) == ("end", codes.BAD_SPEC) and "invalid JSON" in end.message

    # The control: a plain `python -m` from that folder does import the other checkout's code.
    env = {**os.environ, "PYTHONPATH": str(package_root())}
    plain = subprocess.run([sys.executable, "-m", "imacsr_cli.train", str(paths.root)], cwd=decoy, env=env,
                           capture_output=True, timeout=600)
    assert plain.returncode == 42 and marker.read_text() == "decoy"


def test_trainer_command_isolates_the_working_directory():
    root = Path("/opt/imacsr")
    assert trainer_command("py", Path("/r/1"), root, (3, 12)) == ["py", "-P", "-m", "imacsr_cli.train", "/r/1"]
    argv = trainer_command("py", Path("/r/1"), root, (3, 10))
    assert argv[:2] == ["py", "-c"] and argv[-1] == "/r/1" and "sys.path[0] = '/opt/imacsr'" in argv[2]
