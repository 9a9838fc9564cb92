"""Orchestration overhead per run: what the scheduler adds around the trainer's own work.

Runs a grid of N minimal runs (the tiny spec of docs/contracts.md, 1 epoch) through the real
Scheduler, LocalExecutor and a SQLite store in a temporary directory, and measures per run:

- launch → first event: from ``Popen`` to the trainer's ``start`` event (process start, imports,
  dataset and model construction: the price of one process per run);
- epoch event → in the database: from the trainer writing an ``epoch`` line to the scheduler having
  recorded it (what `imacsr status` lags behind the trainer);
- last event → recorded: from the trainer's ``end`` event to the run being ``succeeded`` in the DB
  (exit detection + classification + the final write);
- claim + mark_started: the database work of launching one run.

Usage: .venv/bin/python benchmarks/orchestration.py [--runs 5] [--jobs 1] [--poll 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "launch"))

from imacsr_cli.launch import LocalExecutor, Observer, Scheduler, plan_slots  # noqa: E402
from imacsr_cli.launch.scheduler import ActiveRun  # noqa: E402
from imacsr_cli.spec.grid import GridSpec  # noqa: E402
from imacsr_cli.rundir import RunPaths  # noqa: E402
from imacsr_cli.store import Store  # noqa: E402
from imacsr_cli.rundir import read_events  # noqa: E402
from orchhelp import grid_file  # noqa: E402  (the orchestration tests' tiny grid)


class Clock(Observer):
    """Wall times at which the scheduler reported each step of each run."""

    def __init__(self) -> None:
        self.launched_at: dict[str, float] = {}
        self.epoch_recorded: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}

    def launched(self, active: ActiveRun) -> None:
        self.launched_at[active.run_id] = active.launched

    def epoch(self, active: ActiveRun) -> None:
        self.epoch_recorded[active.run_id] = time.time()

    def finished(self, run_id, outcome, note: str = "") -> None:
        self.finished_at[run_id] = time.time()


class TimedStore(Store):
    """The real store, timing the two writes of a launch."""

    launch_writes: list[float] = []

    def claim(self, *args, **kwargs):  # type: ignore[override]
        t = time.perf_counter()
        rec = super().claim(*args, **kwargs)
        if rec is not None:
            self._t_claim = time.perf_counter() - t
        return rec

    def mark_started(self, *args, **kwargs):  # type: ignore[override]
        t = time.perf_counter()
        super().mark_started(*args, **kwargs)
        self.launch_writes.append(self._t_claim + time.perf_counter() - t)


def summary(values: list[float], unit: float = 1.0, fmt: str = "{:.3f}") -> str:
    v = [x * unit for x in values]
    return (f"mean {fmt.format(statistics.mean(v))}  median {fmt.format(statistics.median(v))}  "
            f"min {fmt.format(min(v))}  max {fmt.format(max(v))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--poll", type=float, default=0.2, help="the scheduler's poll interval (s)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        grid_path = grid_file(Path(tmp), "bench", seeds=tuple(range(args.runs)), epochs=1)
        grid = GridSpec.load(grid_path)
        rows = grid.valid_rows()
        base = Store.open(f"sqlite:///{tmp}/imacsr.db")
        store = TimedStore(base.url, base._w, base._r)  # same engines, timed writes
        store.upsert_grid(grid)
        store.enqueue(grid.name, rows)
        clock = Clock()
        slots = plan_slots(jobs=args.jobs, gpus=[])
        scheduler = Scheduler(store, LocalExecutor(slots), grid.name, Path(tmp) / "runs", poll=args.poll,
                              observer=clock)
        t0 = time.time()
        outcome = scheduler.run()
        wall = time.time() - t0
        assert outcome.exit_code == 0, outcome.counts

        first, epoch_lag, end_lag, trainer_wall = [], [], [], []
        for row in rows:
            events, _ = read_events(RunPaths.of(Path(tmp) / "runs", row.run_id).events)
            by_kind = {e.kind: e for e in events}
            first.append(by_kind["start"].time - clock.launched_at[row.run_id])
            epoch_lag.append(clock.epoch_recorded[row.run_id] - by_kind["epoch"].time)
            end_lag.append(clock.finished_at[row.run_id] - by_kind["end"].time)
            trainer_wall.append(by_kind["end"].time - clock.launched_at[row.run_id])
        store.close()
        # With one slot, the next run starts when the previous trainer has exited: the gap is process
        # teardown (interpreter + torch shutdown) + the poll interval + the launch's DB work.
        ends = sorted((clock.launched_at[r.run_id] + w) for r, w in zip(rows, trainer_wall))
        launches = sorted(clock.launched_at.values())
        gaps = [b - a for a, b in zip(ends, launches[1:])] if args.jobs == 1 else []

    print(f"orchestration overhead: {args.runs} runs of the tiny spec (1 epoch), {args.jobs} CPU slot(s), "
          f"poll {args.poll:g} s")
    print(f"  launch → first event (process start + imports + setup): {summary(first)} s")
    print(f"  epoch event → recorded in the DB:                       {summary(epoch_lag, 1000, '{:.0f}')} ms")
    print(f"  last event → run recorded as succeeded:                 {summary(end_lag, 1000, '{:.0f}')} ms")
    print(f"  claim + mark_started (DB work of one launch):           {summary(store.launch_writes, 1000, '{:.1f}')} ms")
    print(f"  trainer wall per run (launch → end event):              {summary(trainer_wall)} s")
    if gaps:
        print(f"  end event → next launch on the freed slot:              {summary(gaps, 1000, '{:.0f}')} ms")
    busy = sum(trainer_wall) / args.jobs
    print(f"  grid wall {wall:.2f} s vs. trainers {busy:.2f} s per slot: scheduler overhead "
          f"{(wall - busy) / args.runs * 1000:.0f} ms per run")


if __name__ == "__main__":
    main()
