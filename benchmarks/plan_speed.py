"""Start-up and plan speed of the command line (issue 9): each figure is one fresh `imacsr` process.

Configurations, interleaved (round 1 runs each once, then round 2 ...), each timed as wall clock and
as CPU time (user + sys of the child: on a machine shared with other jobs, wall time includes waiting
for a core, CPU time does not):

- ``plan table_iv``: ``imacsr run-grid experiments/table_iv.toml --plan`` (54 runs; an existing,
  empty database; data roots that exist, so the plan checks everything and exits 0),
- ``models``: ``imacsr models`` (9 variants with sizes and points),
- ``status 100k``: ``imacsr status`` on a database of 100,000 runs (benchmarks/status_db.py fills it),
- ``plan 20k``: ``imacsr run-grid big.toml --plan`` for a generated grid of 19,800 runs (Table IV's
  3 models × 3 datasets × 2 methods, with 1,100 seeds),
- ``report iv 20k``: ``imacsr report --table iv --grid big`` over a database that holds that grid's
  19,800 runs, all succeeded with final metrics.

Prints median, min and max per configuration, with the targets of issue 9.

Usage: python benchmarks/plan_speed.py [--rounds 5] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = {"plan table_iv": 1.0, "models": 1.5, "status 100k": 0.5, "plan 20k": 5.0, "report iv 20k": 3.0}

# Table IV at scale: 3 models × 3 datasets × (conventional, iMacSR) × 1,100 seeds = 19,800 runs, so
# that `report --table iv` has a valid table to build (a cell's runs differ only in their seed).
BIG_GRID = """
[grid]
name = "big"
seeds = [%s]
labels = { table = "iv" }
[sweep]
"model.name" = ["deeplabv3plus", "topformer", "seaformer"]
"data.name" = ["cityscapes", "camvid", "synthiasf"]
"method.name" = ["conventional", "imacsr"]
""" % ", ".join(str(s) for s in range(1100))


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one command; it must exit 0."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err.strip()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def fill_report_db(db: Path, grid_path: Path) -> int:
    """The big grid enqueued through the Store, then every run marked succeeded with final metrics
    (bulk SQL, as status_db.py fills its database)."""
    from sqlalchemy import update

    from imacsr_cli.spec.grid import GridSpec
    from imacsr_cli.store import Store
    from imacsr_cli.store.models import Metric, Run

    grid = GridSpec.load(grid_path)
    rows = grid.valid_rows()
    rng = random.Random(0)
    with Store.open(str(db)) as store:
        store.upsert_grid(grid)
        store.enqueue(grid.name, rows)
        now = time.time()
        metrics = []
        for r in rows:
            for prefix in ("", "paper/"):
                for name in ("mIoU", "mF1", "mPrecision", "mRecall"):
                    metrics.append({"run_id": r.run_id, "epoch": 50, "split": "final", "name": prefix + name,
                                    "value": rng.random()})
        with store._write() as conn:
            conn.execute(update(Run).values(state="succeeded", epoch=50, attempts=1, started_at=now - 100,
                                            finished_at=now))
            conn.execute(Metric.__table__.insert(), metrics)
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", nargs="*", choices=list(TARGETS), help="run only these configurations")
    args = ap.parse_args()
    names = args.only or list(TARGETS)
    py = [sys.executable, "-m", "imacsr_cli"]
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        data = tmp / "data"
        from imacsr_cli.data.fake import write_fake

        for d in ("cityscapes", "camvid", "synthiasf"):  # tiny trees in each dataset's layout: the plan checks it
            write_fake(d, data / d, size=(64, 32))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "IMACSR_DATA": str(data)}
        env.pop("IMACSR_DB", None)
        big = tmp / "big.toml"
        big.write_text(BIG_GRID)
        empty_db = tmp / "empty.db"
        from imacsr_cli.store import Store

        Store.open(str(empty_db)).close()
        commands: dict[str, list[str]] = {
            "plan table_iv": py + ["run-grid", str(ROOT / "experiments/table_iv.toml"), "--plan", "--db", str(empty_db)],
            "models": py + ["models"],
            "plan 20k": py + ["run-grid", str(big), "--plan", "--max-runs", "20000", "--db", str(empty_db)],
        }
        if "status 100k" in names:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from status_db import fill

            status_db = tmp / "status.db"
            with Store.open(str(status_db)) as store:
                fill(store, 100_000, 1000)
            commands["status 100k"] = py + ["status", "--db", str(status_db)]
        if "report iv 20k" in names:
            report_db = tmp / "report.db"
            n = fill_report_db(report_db, big)
            print(f"report database: {n:,} succeeded runs of grid 'big'")
            commands["report iv 20k"] = py + ["report", "--table", "iv", "--grid", "big", "--db", str(report_db)]
        walls: dict[str, list[float]] = {k: [] for k in names}
        cpus: dict[str, list[float]] = {k: [] for k in names}
        for name in names:  # one warm-up each (file cache, .pyc)
            timed(commands[name], env, tmp)
        for _ in range(args.rounds):
            for name in names:  # interleaved: every configuration once per round
                wall, cpu = timed(commands[name], env, tmp)
                walls[name].append(wall)
                cpus[name].append(cpu)
    load = os.getloadavg()
    print(f"\n{args.rounds} rounds, interleaved; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f} on {os.cpu_count()} cores")
    print(f"{'configuration':<15} {'wall median':>11} {'min':>6} {'max':>6}   {'CPU median':>10} {'min':>6} "
          f"{'max':>6}   {'target':>6}  {'CPU / target':>12}")
    for name in names:
        w, c = walls[name], cpus[name]
        print(f"{name:<15} {statistics.median(w):>10.2f}s {min(w):>5.2f}s {max(w):>5.2f}s   "
              f"{statistics.median(c):>9.2f}s {min(c):>5.2f}s {max(c):>5.2f}s   {TARGETS[name]:>5.1f}s  "
              f"{statistics.median(c) / TARGETS[name]:>12.2f}")


if __name__ == "__main__":
    main()
