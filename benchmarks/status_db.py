"""Status queries at scale: a results database with 100,000 runs.

Fills a temporary SQLite database (bulk executemany inserts, through the Store's own schema) with
100 grids of 1,000 runs each: states mixed (60 % succeeded, 10 % failed, 5 % running, 25 % queued),
a last-val JSON per started run, 4 final metrics per succeeded run and 3 epochs of train/val metrics
for the runs of one grid. Then times, best of 5 after one warm-up:

- ``Store.open`` (schema check) on the full database,
- ``grid_summary()`` (every grid, counts by state; aggregated in SQL),
- ``runs_frame(grid)`` for one grid of 1,000 runs (with last val and final metrics, cells),
- ``plan(grid)`` and ``cells_frame(grid)``,
- and, in a fresh interpreter, import + open + ``grid_summary()`` (what `imacsr status` pays,
  minus the CLI and the rendering), with pandas and with ``records=True`` (no pandas import).

Usage: python benchmarks/status_db.py [--runs 100000] [--grid-size 1000] [--keep PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imacsr_cli.store import Store  # noqa: E402


def fill(store: Store, n_runs: int, grid_size: int) -> None:
    rng = random.Random(0)
    now = time.time()
    runs, links, metrics, grids = [], [], [], []
    n_grids = (n_runs + grid_size - 1) // grid_size
    positions = ("input", "central", "output")
    for g in range(n_grids):
        grids.append({"name": f"grid{g:03d}", "title": f"Synthetic grid {g}", "reproduces": "", "path": "",
                      "toml": "", "created_at": now, "updated_at": now})
    for i in range(n_runs):
        run_id = f"{i:012x}"
        g = i // grid_size
        r = rng.random()
        state = "succeeded" if r < 0.6 else "failed" if r < 0.7 else "running" if r < 0.75 else "queued"
        count = 1 + i % 5
        spec = {"model": {"name": "deeplabv3plus", "variant": "smp"}, "data": {"name": "cityscapes"},
                "method": {"name": "imacsr"}, "points": {"count": count, "position": positions[i % 3],
                                                          "spacing": 2, "names": [f"p{k}" for k in range(count)]},
                "train": {"epochs": 50, "seed": i % 3}}
        started = state != "queued"
        epoch = 50 if state == "succeeded" else rng.randint(1, 49) if started else 0
        runs.append({
            "run_id": run_id, "spec_json": json.dumps(spec), "model": "deeplabv3plus", "variant": "smp",
            "dataset": "cityscapes", "method": "imacsr", "num_points": count, "seed": i % 3,
            "position": positions[i % 3], "spacing": 2, "points": json.dumps(spec["points"]["names"]),
            "state": state, "reason": "crashed" if state == "failed" else None, "message": None,
            "exit_code": 1 if state == "failed" else None, "attempts": 1 if started else 0, "epoch": epoch,
            "epochs": 50, "owner": "sched" if state == "running" else None, "owner_pid": None,
            "host": "h" if started else None, "trainer_pid": None, "slot": "cuda:0" if started else None,
            "heartbeat_at": now - rng.random() * 100 if started else None, "created_at": now - n_runs + i,
            "started_at": now - 1000 if started else None, "finished_at": now if state in ("succeeded", "failed")
            else None, "run_dir": f"results/runs/{run_id}" if started else None,
            "last_val": json.dumps({"mIoU": rng.random(), "mF1": rng.random(), "mPrecision": rng.random(),
                                    "mRecall": rng.random()}) if started else None,
        })
        links.append({"grid": f"grid{g:03d}", "run_id": run_id, "cell": json.dumps([{"figure": "3"}]),
                      "ord": i % grid_size})
        if state == "succeeded":
            for name in ("mIoU", "mF1", "mPrecision", "mRecall"):
                metrics.append({"run_id": run_id, "epoch": 50, "split": "final", "name": name, "value": rng.random()})
        if g == 0 and started:
            for e in range(1, 4):
                for split, names in (("train", ("loss", "ce")), ("val", ("mIoU", "mF1"))):
                    for name in names:
                        metrics.append({"run_id": run_id, "epoch": e, "split": split, "name": name,
                                        "value": rng.random()})

    from imacsr_cli.store.models import Grid, GridRun, Metric, Run

    with store._write() as conn:
        conn.execute(Grid.__table__.insert(), grids)
        conn.execute(Run.__table__.insert(), runs)
        conn.execute(GridRun.__table__.insert(), links)
        conn.execute(Metric.__table__.insert(), metrics)
    print(f"filled: {n_runs:,} runs, {n_grids} grids, {len(metrics):,} metric rows")


def best(fn, repeat: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--grid-size", type=int, default=1000)
    ap.add_argument("--keep", help="write the database here instead of a temporary folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "status.db"
        t = time.perf_counter()
        with Store.open(str(path)) as store:
            fill(store, args.runs, args.grid_size)
            fill_s = time.perf_counter() - t
            print(f"fill time: {fill_s:.2f} s ({path.stat().st_size / 1e6:.0f} MB)")
        open_s = best(lambda: Store.open(str(path)).close())
        with Store.open(str(path)) as store:
            summary = store.grid_summary()
            assert len(summary) == (args.runs + args.grid_size - 1) // args.grid_size
            frame = store.runs_frame("grid000")
            assert len(frame) == min(args.grid_size, args.runs)
            figures = {
                "Store.open": open_s,
                "grid_summary()": best(store.grid_summary),
                "grid_summary(records=True)": best(lambda: store.grid_summary(records=True)),
                f"runs_frame(grid) [{len(frame)} runs]": best(lambda: store.runs_frame("grid000")),
                "runs_frame(grid, records=True)": best(lambda: store.runs_frame("grid000", records=True)),
                "plan(grid)": best(lambda: store.plan("grid000")),
                "cells_frame(grid)": best(lambda: store.cells_frame("grid000")),
            }
        for label, call in (("grid_summary()", "s.grid_summary()"),
                            ("grid_summary(records=True)", "s.grid_summary(records=True)")):
            code = ("import time; t = time.perf_counter(); from imacsr_cli.store import Store; "
                    f"s = Store.open({str(path)!r}, create=False); {call}; "
                    "print(time.perf_counter() - t)")
            cold = []
            for _ in range(5):
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     cwd=Path(__file__).resolve().parent.parent)
                cold.append(float(out.stdout.strip()))
            figures[f"fresh process: import + open + {label}"] = min(cold)
        width = max(len(k) for k in figures)
        print(f"\n{'query':<{width}}  best of 5 (s)")
        for name, secs in figures.items():
            print(f"{name:<{width}}  {secs:.3f}")


if __name__ == "__main__":
    main()
