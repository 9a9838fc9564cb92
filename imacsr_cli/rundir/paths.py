"""RunPaths: every file of a run directory, named in one place.

The trainer writes these files and the scheduler, the CLI and the benchmarks read them; all take the
names from here (imacsr_cli.rundir).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    root: Path  # RUN_DIR, by default results/runs/<run_id>

    RESULT = "result.json"  # the file name alone, for checks over many directories without a RunPaths each

    @classmethod
    def of(cls, runs_dir: str | Path, run_id: str) -> RunPaths:
        return cls(Path(runs_dir) / run_id)

    @property
    def spec(self) -> Path:  # the resolved RunSpec, as JSON (input of the trainer)
        return self.root / "spec.json"

    @property
    def events(self) -> Path:  # one JSON object per line: start, epoch, heartbeat, end
        return self.root / "events.jsonl"

    @property
    def checkpoint(self) -> Path:  # written atomically at the end of every epoch
        return self.root / "checkpoint.pt"

    @property
    def result(self) -> Path:  # final metrics, written last and atomically: its presence = success
        return self.root / self.RESULT

    @property
    def log(self) -> Path:  # the trainer's human-readable log (and tracebacks)
        return self.root / "train.log"

    @property
    def stdout(self) -> Path:  # the trainer's stdout/stderr, captured by the executor (a section per launch)
        # The trainer writes train.log itself; anything that escapes it (an import error, a segfault, a
        # warning printed by a library) lands here, beside it.
        return self.root / "trainer.out"

    @property
    def lock(self) -> Path:  # flock'ed by the trainer that owns the directory
        return self.root / ".lock"

    @property
    def fault_marker(self) -> Path:  # test-only: a one-shot injected fault has fired (IMACSR_TEST_FAULT)
        return self.root / ".fault_fired"


def lock_holder(paths: RunPaths) -> int | None:
    """The pid the trainer holding RUN_DIR/.lock wrote into it (None if unreadable or not written:
    the holder writes it only once the lock is its own, and not at all on a full disk)."""
    try:
        text = paths.lock.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
