"""Several real processes on one database (SQLite file or PostgreSQL): atomic claims, readers never
blocked by a writer; on SQLite a second writer waits for the write lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

from storehelp import rows

from imacsr_cli.store import Store

CLAIMER = textwrap.dedent("""
    import os, sys, time
    from imacsr_cli.store import Store
    url, owner, flags = sys.argv[1], sys.argv[2], sys.argv[3]
    store = Store.open(url)
    open(os.path.join(flags, owner), "w").close()  # ready
    while not os.path.exists(os.path.join(flags, "go")):
        time.sleep(0.001)
    got = []
    while True:
        run = store.claim(owner, grid="g")
        if run is None:
            break
        store.heartbeat(run.run_id, owner)
        store.finish(run.run_id, owner, "succeeded")
        got.append(run.run_id)
    print("\\n".join(got))
""")


def test_processes_never_share_a_run(tmp_path, db_url):
    url = db_url
    with Store.open(url) as store:
        store.enqueue("g", rows(300))
    flags = tmp_path / "flags"
    flags.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, url, f"sched-{i}", str(flags)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    deadline = time.time() + 60
    while len(list(flags.iterdir())) < 4 and time.time() < deadline:  # all ready: start at once
        time.sleep(0.01)
    (flags / "go").touch()
    claimed: list[str] = []
    per_proc = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids = [line for line in out.splitlines() if line]
        per_proc.append(len(ids))
        claimed += ids
    assert len(claimed) == 300 and len(set(claimed)) == 300  # every run claimed exactly once
    assert sum(n > 0 for n in per_proc) >= 2  # they really competed
    with Store.open(url) as store:
        assert store.plan("g")["succeeded"] == 300
        ev = store.run_events(claimed[0])
        assert (ev["kind"] == "claimed").sum() == 1


WRITER = textwrap.dedent("""
    import sys, time
    from sqlalchemy import text
    from imacsr_cli.store import Store
    url = sys.argv[1]
    store = Store.open(url)
    run = store.claim("writer", grid="g")
    print("ready", flush=True)
    for epoch in range(1, 4):
        with store._write() as conn:  # hold the write lock for a long transaction
            conn.execute(text("UPDATE runs SET heartbeat_at = heartbeat_at WHERE run_id = :r"), {"r": run.run_id})
            time.sleep(1.0)
        store.record_epoch(run.run_id, "writer", epoch, {"loss": 1.0 / epoch}, {"mIoU": 0.1 * epoch})
    store.finish(run.run_id, "writer", "succeeded")
""")


def test_reader_is_never_blocked_by_a_writer(db_url):
    url = db_url
    with Store.open(url) as store:
        store.upsert_grid("g")
        store.enqueue("g", rows(50))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    errors: list[BaseException] = []
    latencies: list[float] = []

    def read_loop() -> None:
        with Store.open(url) as reader:
            while writer.poll() is None:
                t = time.perf_counter()
                try:
                    reader.grid_summary()
                    reader.runs_frame("g")
                except BaseException as exc:  # "database is locked" would land here
                    errors.append(exc)
                    return
                latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=read_loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    _, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    assert errors == []
    assert len(latencies) > 10 and max(latencies) < 0.5  # never waited for the 1 s write transactions
    with Store.open(url) as store:
        assert store.plan("g")["succeeded"] == 1


def test_second_writer_waits_instead_of_failing(tmp_path):  # SQLite's write lock (BEGIN IMMEDIATE)
    url = str(tmp_path / "imacsr.db")
    with Store.open(url) as a, Store.open(url) as b:
        a.enqueue("g", rows(2))
        done = threading.Event()

        def hold() -> None:
            with a._write() as conn:
                conn.exec_driver_sql("UPDATE runs SET attempts = attempts")
                time.sleep(0.7)
            done.set()

        t = threading.Thread(target=hold)
        t.start()
        time.sleep(0.1)
        start = time.perf_counter()
        run = b.claim("b", grid="g")  # blocks on BEGIN IMMEDIATE, then succeeds
        waited = time.perf_counter() - start
        t.join()
        assert run is not None and done.is_set() and waited > 0.4
