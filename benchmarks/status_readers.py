"""`imacsr status --json` readers while two schedulers write: where a reader's time goes.

Two `run-grid --jobs 1` schedulers train one tiny grid (real trainers, real SQLite WAL database).
While they write, rounds of 8 concurrent readers run, interleaved in each round:

- ``live``: 8 readers of the database being written,
- ``copy``: 8 readers of a snapshot of it (SQLite backup, taken at the start of the round) that
  nobody writes: the same CPU load, the same data, no writer to wait on.

Then, with the schedulers done, the same two reader sets on an idle machine, and one reader alone.
Each reader is ``python READER.py URL``: it reports its own phases (imports of the CLI and the store,
then the status call: Store.open + every query + the JSON rendering) as wall and CPU seconds; the
parent adds the wall time from spawn to exit (the interpreter's start is the rest).

``live`` − ``copy`` in the status call's wall time is what a reader waits on the writers; the status
call's wall − CPU under ``copy`` is waiting for a core. Prints medians per configuration.

Usage: python benchmarks/status_readers.py [--rounds 4] [--readers 8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "launch"))

from orchhelp import PYTHON, env, grid_file  # noqa: E402

READER = r'''
import sys, time, io, contextlib
t0, c0 = time.perf_counter(), time.process_time()
from imacsr_cli.cli.app import app
import imacsr_cli.store  # what status imports when it runs
t1, c1 = time.perf_counter(), time.process_time()
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        app(["status", "--json", "--db", sys.argv[1]], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
t2, c2 = time.perf_counter(), time.process_time()
assert out.getvalue().strip().startswith("[") or out.getvalue().strip().startswith("{"), out.getvalue()[:200]
print(f"{t1 - t0} {c1 - c0} {t2 - t1} {c2 - c1}")
'''


def readers(script: Path, url: str, n: int) -> list[dict[str, float]]:
    procs = []
    for _ in range(n):
        t = time.perf_counter()
        procs.append((t, subprocess.Popen([PYTHON, str(script), url], env=env(), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)))
    out = []
    for t, p in procs:
        stdout, stderr = p.communicate(timeout=600)
        total = time.perf_counter() - t
        if p.returncode != 0:
            raise SystemExit(f"a reader failed ({p.returncode}): {stderr.strip().splitlines()[-1:]}")
        imp, imp_cpu, call, call_cpu = map(float, stdout.split())
        out.append({"total": total, "start": total - imp - call, "imports": imp, "imports_cpu": imp_cpu,
                    "status": call, "status_cpu": call_cpu})
    return out


def snapshot(db: Path, to: Path) -> None:
    to.unlink(missing_ok=True)
    src, dst = sqlite3.connect(db), sqlite3.connect(to)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()


def med(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(name: str, rows: list[dict[str, float]]) -> None:
    print(f"{name:<22} n={len(rows):<3} total {med(rows, 'total'):7.2f} s | interpreter start "
          f"{med(rows, 'start'):6.2f} | imports {med(rows, 'imports'):6.2f} (cpu {med(rows, 'imports_cpu'):5.2f}) "
          f"| status call {med(rows, 'status'):6.3f} (cpu {med(rows, 'status_cpu'):5.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="imacsr-readers-"))
    work.mkdir(parents=True, exist_ok=True)
    script = work / "reader.py"
    script.write_text(READER)
    grid_file(work, "busy", seeds=tuple(range(6)), epochs=3)
    db = work / "results" / "imacsr.db"
    copy = work / "copy.db"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; work dir {work}")

    scheds = [subprocess.Popen([PYTHON, "-m", "imacsr_cli", "run-grid", "busy.toml", "--jobs", "1"], cwd=work,
                               env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    while not db.exists() or os.path.getsize(db) == 0:
        time.sleep(0.2)
    time.sleep(5)  # let the schedulers claim and the trainers start: the load under test
    live, snap = [], []
    for i in range(args.rounds):
        if any(p.poll() is not None for p in scheds):
            break
        snapshot(db, copy)
        live += readers(script, f"sqlite:///{db}", args.readers)
        snap += readers(script, f"sqlite:///{copy}", args.readers)
    loads = os.getloadavg()[0]
    for p in scheds:
        p.wait()
    print(f"load average {os.getloadavg()[0]:.1f} with the schedulers done")
    idle8 = readers(script, f"sqlite:///{db}", args.readers)
    idle1 = []
    for _ in range(5):
        idle1 += readers(script, f"sqlite:///{db}", 1)
    print(f"load average {loads:.1f} at the end of the loaded rounds")
    report("loaded, live db", live)
    report("loaded, snapshot db", snap)
    report(f"no writer, {args.readers} at once", idle8)
    report("no writer, one reader", idle1)
    if live and snap:
        wait = med(live, "status") - med(snap, "status")
        print(f"waiting on the writers (live − snapshot, status call): {wait:+.3f} s; "
              f"status call / total under load: {med(live, 'status') / med(live, 'total'):.1%}; "
              f"with writers / one reader without: {med(live, 'total') / med(idle1, 'total'):.1f}x")


if __name__ == "__main__":
    main()
