"""Helpers of the orchestration tests: tiny grid files, the real CLI as a subprocess, waiting.

Every trainer here is the real one (``python -m imacsr_cli.train``) on the tiny spec of
docs/contracts.md (32×32 images, 4 of them, 2 epochs): a few seconds each, mostly importing torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable

# A bound on waiting only turns a hang into a failure; it never measures speed. The suite runs on a
# shared, loaded machine, so no wait gives up before this many seconds, whatever the caller asked.
PATIENCE_S = 600.0


TINY_BASE = """
[base]
model.name = "deeplabv3plus"
data.name = "synthetic"
data.train_size = [32, 32]
data.eval_size = [32, 32]
data.num_train = 4
data.num_val = 2
train.epochs = {epochs}
train.batch_size = 2
points.count = 2
points.position = "input"
points.spacing = 1
"""


def grid_file(directory: Path, name: str, sweep: dict[str, list[Any]] | None = None, seeds: tuple[int, ...] = (0,),
              extra: str = "", epochs: int = 2) -> Path:
    """A tiny grid: the tiny base spec (``epochs`` epochs), one run per seed × sweep combination.
    benchmarks/orchestration.py uses it too."""
    text = f'[grid]\nname = "{name}"\nseeds = {json.dumps(list(seeds))}\n' + TINY_BASE.format(epochs=epochs) + extra
    if sweep:
        text += "\n[sweep]\n" + "".join(f'"{k}" = {json.dumps(v)}\n' for k, v in sweep.items())
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout importable, no GPU, no stray settings."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("IMACSR_")}
    e["PYTHONPATH"] = str(REPO)
    e["CUDA_VISIBLE_DEVICES"] = ""
    e["PYTHONUNBUFFERED"] = "1"
    e.update(extra)
    return e


def imacsr(args: list[str], cwd: Path, timeout: float = PATIENCE_S, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "imacsr_cli", *args], cwd=cwd, env=env(**extra_env), capture_output=True,
                          text=True, timeout=timeout)


def start(args: list[str], cwd: Path, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "imacsr_cli", *args], cwd=cwd, env=env(**extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate: Callable[[], Any], timeout: float = PATIENCE_S, what: str = "condition",
             proc: subprocess.Popen | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail if ``proc`` exits first."""
    timeout = max(timeout, PATIENCE_S)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process exited {proc.returncode} while waiting for {what}\n{out}\n{err}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for_schema(root: Path, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until the run-grid working in ``root`` has created the schema of results/imacsr.db: the
    file appears a moment before its schema, and a read-only open says NotFound until then."""
    from imacsr_cli.errors import NotFound
    from imacsr_cli.store import Store

    def ready() -> bool:
        try:
            Store.open(f"sqlite:///{root}/results/imacsr.db", create=False).close()  # creates nothing
        except NotFound:
            return False
        return True

    wait_for(ready, timeout, "the database", proc=proc)


def events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # the trainer is writing this line right now
        if line.strip():
            out.append(json.loads(line))
    return out


def starts(run_dir: Path) -> list[dict[str, Any]]:
    return [e for e in events(run_dir) if e["event"] == "start"]


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True
    return False
