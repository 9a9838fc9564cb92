"""Cluster figures: claim throughput on SQLite and PostgreSQL, and Slurm against the local executor.

1. Claims per second with 1, 4 and 8 concurrent claimer processes, on SQLite and on PostgreSQL: each
   claimer loops claim → heartbeat → record_epoch → finish until the queue is empty (the database work
   of one run's life). Configurations are interleaved, ``--reps`` times.
2. Submit → start latency and slot turnaround, Slurm (submitit, through SlurmExecutor's own monitor)
   against local subprocesses: a trivial job that writes its start time; turnaround = from one job's
   end to the next job's start in the same slot, as the scheduler sees it.
3. Scheduler overhead per run on each executor: a tiny real grid through the real Scheduler; overhead =
   (grid wall time × slots − Σ trainer wall time) / runs.

Needs the services (eval "$(.ci/services.sh start)"): IMACSR_TEST_PG_URL and SLURM_CONF.
Usage: .venv/bin/python benchmarks/cluster.py [--runs 400] [--reps 2] [--jobs 6] [--grid-runs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "launch"))
sys.path.insert(0, str(ROOT / "tests" / "store"))

CLAIMER = textwrap.dedent("""
    import os, sys, time
    from imacsr_cli.store import Store
    url, owner, flags = sys.argv[1], sys.argv[2], sys.argv[3]
    store = Store.open(url)
    open(os.path.join(flags, owner), "w").close()
    while not os.path.exists(os.path.join(flags, "go")):
        time.sleep(0.001)
    n = 0
    while (run := store.claim(owner, grid="g")) is not None or store.plan("g")["queued"]:
        if run is None:
            continue
        store.heartbeat(run.run_id, owner)
        store.record_epoch(run.run_id, owner, 1, {"loss": 1.0}, {"mIoU": 0.5})
        store.finish(run.run_id, owner, "succeeded")
        n += 1
    print(n)
""")


def claims_per_second(url: str, n_claimers: int, n_runs: int, tmp: Path) -> float:
    from storehelp import rows

    from imacsr_cli.store import Store

    with Store.open(url) as store:
        store.enqueue("g", rows(n_runs))
    flags = tmp / f"flags-{uuid.uuid4().hex[:6]}"
    flags.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, url, f"c{i}", str(flags)], stdout=subprocess.PIPE,
                              text=True, env=env) for i in range(n_claimers)]
    while len(list(flags.iterdir())) < n_claimers:
        time.sleep(0.01)
    t0 = time.perf_counter()
    (flags / "go").touch()
    total = sum(int(p.communicate()[0]) for p in procs)
    wall = time.perf_counter() - t0
    assert total == n_runs, (total, n_runs)
    return n_runs / wall


def fresh_url(kind: str, tmp: Path) -> tuple[str, object]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / uuid.uuid4().hex}.db", None
    from services import fresh_pg_database

    ctx = fresh_pg_database()
    return ctx.__enter__(), ctx


def bench_claims(args: argparse.Namespace, tmp: Path) -> None:
    kinds = ["sqlite"] + (["postgresql"] if os.environ.get("IMACSR_TEST_PG_URL") else [])
    figures: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.reps):
        for n in (1, 4, 8):
            for kind in kinds:
                url, ctx = fresh_url(kind, tmp)
                try:
                    figures.setdefault((kind, n), []).append(claims_per_second(url, n, args.runs, tmp))
                finally:
                    if ctx is not None:
                        ctx.__exit__(None, None, None)
    print(f"claim+heartbeat+epoch+finish cycles per second ({args.runs} runs, median of {args.reps}):")
    print(f"  {'claimers':>8}  " + "  ".join(f"{k:>10}" for k in kinds) + ("  pg/sqlite" if len(kinds) == 2 else ""))
    for n in (1, 4, 8):
        med = [statistics.median(figures[(k, n)]) for k in kinds]
        ratio = f"  {med[1] / med[0]:9.2f}x" if len(med) == 2 else ""
        print(f"  {n:>8}  " + "  ".join(f"{m:10.1f}" for m in med) + ratio)


# ---- submit → start, slot turnaround -------------------------------------------------------------
def _stamp(path: str) -> None:
    Path(path).write_text(f"{time.time()}\n")


def bench_latency(args: argparse.Namespace, tmp: Path) -> None:

    have_slurm = bool(os.environ.get("SLURM_CONF")) and subprocess.run(
        ["sinfo"], capture_output=True).returncode == 0
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.reps):
        for kind in (["local", "slurm"] if have_slurm else ["local"]):
            res = results.setdefault(kind, {"start": [], "turnaround": []})
            prev_end = None
            for k in range(args.jobs):
                stamp = tmp / f"{kind}-{uuid.uuid4().hex[:6]}"
                t_submit = time.time()
                if kind == "local":
                    p = subprocess.Popen([sys.executable, "-c",
                                          f"import time,pathlib; pathlib.Path({str(stamp)!r}).write_text(str(time.time()))"])
                    while p.poll() is None:
                        time.sleep(0.01)
                    t_seen_done = time.time()
                else:
                    job_id = _slurm_stamp_job(stamp, tmp)
                    t_seen_done = _slurm_wait(job_id)
                t_start = float(stamp.read_text())
                res["start"].append(t_start - t_submit)
                if prev_end is not None:
                    res["turnaround"].append(t_start - prev_end)
                prev_end = t_seen_done
    print(f"\nsubmit → start latency and slot turnaround (s, median over {args.jobs} jobs × {args.reps}):")
    print(f"  {'executor':>8}  {'start':>7}  {'turnaround':>10}")
    for kind, res in results.items():
        print(f"  {kind:>8}  {statistics.median(res['start']):7.2f}  {statistics.median(res['turnaround']):10.2f}")
    if "slurm" in results:
        print(f"  slurm/local start: {statistics.median(results['slurm']['start']) / statistics.median(results['local']['start']):.0f}x")


_EXECUTOR = None


def _slurm_stamp_job(stamp: Path, tmp: Path) -> str:
    global _EXECUTOR
    import submitit

    if _EXECUTOR is None:
        _EXECUTOR = submitit.SlurmExecutor(folder=str(tmp / "submitit" / "%j"))
        _EXECUTOR.update_parameters(time=0, cpus_per_task=1, setup=[f'export PYTHONPATH="{ROOT}"'])
    return _EXECUTOR.submit(_stamp, str(stamp)).job_id


def _slurm_wait(job_id: str) -> float:
    """When the scheduler would see the job done: its SlurmMonitor's sacct view."""
    from imacsr_cli.launch.slurm import LIVE_STATES, SlurmMonitor

    mon = SlurmMonitor(poll=0.5)
    mon.watch(job_id)
    try:
        while True:
            st = mon.state(job_id)
            if st is not None and st[0] not in LIVE_STATES:
                return time.time()
            time.sleep(0.05)
    finally:
        mon.close()


# ---- scheduler overhead per run -------------------------------------------------------------------
def bench_overhead(args: argparse.Namespace, tmp: Path) -> None:
    from orchhelp import grid_file

    from imacsr_cli.launch import LocalExecutor, Observer, Scheduler, plan_slots
    from imacsr_cli.spec.grid import GridSpec
    from imacsr_cli.store import Store

    have_slurm = bool(os.environ.get("SLURM_CONF"))
    print(f"\nscheduler overhead per run ({args.grid_runs} tiny runs, 2 slots):")
    for kind in (["local", "slurm"] if have_slurm else ["local"]):
        d = tmp / f"grid-{kind}"
        d.mkdir()
        path = grid_file(d, f"ov{kind}", seeds=tuple(range(args.grid_runs)), epochs=1)
        grid = GridSpec.load(path)
        url = f"sqlite:///{d / 'imacsr.db'}"
        with Store.open(url) as store:
            store.upsert_grid(grid)
            store.enqueue(grid.name, grid.expand())
            if kind == "local":
                ex = LocalExecutor(plan_slots(jobs=2))
            else:
                from imacsr_cli.launch.slurm import SlurmExecutor, SlurmResources

                ex = SlurmExecutor(SlurmResources(cpus_per_task=1), 2, d / "slurm")
            t0 = time.time()
            Scheduler(store, ex, grid.name, d / "runs", observer=Observer()).run()
            wall = time.time() - t0
        trainer = 0.0
        for run_dir in (d / "runs").iterdir():
            evs = [json.loads(ln) for ln in (run_dir / "events.jsonl").read_text().splitlines() if ln.strip()]
            trainer += max(e["time"] for e in evs) - min(e["time"] for e in evs)
        print(f"  {kind:>8}: grid {wall:6.1f} s, trainers {trainer:6.1f} s in all, "
              f"overhead {(wall * 2 - trainer) / args.grid_runs:5.2f} s per run (incl. process start + imports)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--grid-runs", type=int, default=4)
    ap.add_argument("--only", choices=["claims", "latency", "overhead"], action="append")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, fn in (("claims", bench_claims), ("latency", bench_latency), ("overhead", bench_overhead)):
            if not args.only or name in args.only:
                fn(args, tmp)


if __name__ == "__main__":
    main()
