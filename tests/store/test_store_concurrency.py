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

# A bound on each wait only turns a hang into a failure; nothing here measures time.
PATIENCE_S = 600.0


def _wait(predicate, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


CLAIMER = textwrap.dedent("""
    import os, sys, time
    from imacsr_cli.store import Store
    url, owner, flags, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def wait(name_prefix, count):
        while sum(f.startswith(name_prefix) for f in os.listdir(flags)) < count:
            time.sleep(0.001)

    store = Store.open(url)
    open(os.path.join(flags, "ready-" + owner), "w").close()
    wait("go", 1)
    got = []
    while True:
        run = store.claim(owner, grid="g")
        if run is None:
            break
        store.heartbeat(run.run_id, owner)
        store.finish(run.run_id, owner, "succeeded")
        got.append(run.run_id)
        if len(got) == 1:  # a barrier: every process holds a run before any takes a second one,
            open(os.path.join(flags, "first-" + owner), "w").close()  # so they interleave however
            wait("first-", n)  # the machine schedules them
    print("\\n".join(got))
""")


def test_processes_never_share_a_run(tmp_path, db_url):
    url = db_url
    with Store.open(url) as store:
        store.enqueue("g", rows(300))
    flags = tmp_path / "flags"
    flags.mkdir()
    n = 4
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, url, f"sched-{i}", str(flags), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    _wait(lambda: len(list(flags.glob("ready-*"))) == n or any(p.poll() is not None for p in procs), "ready")
    (flags / "go").touch()  # all ready: start at once
    claimed: list[str] = []
    per_proc = []
    for p in procs:
        out, err = p.communicate(timeout=PATIENCE_S)
        assert p.returncode == 0, err
        ids = [line for line in out.splitlines() if line]
        per_proc.append(len(ids))
        claimed += ids
    assert len(claimed) == 300 and len(set(claimed)) == 300  # every run claimed exactly once
    assert all(k >= 1 for k in per_proc)  # they really competed (the barrier guarantees it)
    with Store.open(url) as store:
        assert store.plan("g")["succeeded"] == 300
        for run_id in claimed:
            ev = store.run_events(run_id)
            assert (ev["kind"] == "claimed").sum() == 1


WRITER = textwrap.dedent("""
    import os, sys, time
    from sqlalchemy import text
    from imacsr_cli.store import Store
    url, flags = sys.argv[1], sys.argv[2]
    store = Store.open(url)
    run = store.claim("writer", grid="g")
    print(run.run_id, flush=True)
    for epoch in range(1, 4):
        with store._write() as conn:  # hold the write lock until the readers have read under it
            conn.execute(text("UPDATE runs SET heartbeat_at = heartbeat_at WHERE run_id = :r"), {"r": run.run_id})
            open(os.path.join(flags, f"held-{epoch}"), "w").close()
            while not os.path.exists(os.path.join(flags, f"read-{epoch}")):
                time.sleep(0.005)
        store.record_epoch(run.run_id, "writer", epoch, {"loss": 1.0 / epoch}, {"mIoU": 0.1 * epoch})
    store.finish(run.run_id, "writer", "succeeded")
""")


def test_reader_is_never_blocked_by_a_writer(tmp_path, db_url):
    """Each read is made while another process holds the write lock, and that process waits for the
    read to end before it commits: a reader that waited for the writer would never finish (it would
    fail with "database is locked" after the busy timeout)."""
    url = db_url
    flags = tmp_path / "flags"
    flags.mkdir()
    with Store.open(url) as store:
        store.upsert_grid("g")
        store.enqueue("g", rows(50))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url, str(flags)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    run_id = writer.stdout.readline().strip()
    assert run_id, writer.communicate()[1]
    seen = []
    with Store.open(url) as reader:
        for epoch in range(1, 4):
            _wait(lambda: (flags / f"held-{epoch}").exists() or writer.poll() is not None, f"lock {epoch}")
            assert writer.poll() is None, writer.communicate()[1]
            summary = reader.grid_summary()
            frame = reader.runs_frame("g")
            # A consistent snapshot: the epochs committed before this write transaction, not its own.
            seen.append((int(summary["running"].iloc[0]), int(frame.set_index("run_id").loc[run_id, "epoch"])))
            (flags / f"read-{epoch}").touch()
    _, err = writer.communicate(timeout=PATIENCE_S)
    assert writer.returncode == 0, err
    assert seen == [(1, 0), (1, 1), (1, 2)]
    with Store.open(url) as store:
        assert store.plan("g")["succeeded"] == 1


def test_second_writer_waits_instead_of_failing(tmp_path):  # SQLite's write lock (BEGIN IMMEDIATE)
    """A claim made while another connection holds the write lock waits (busy timeout) and then sees
    what that transaction committed: the held run was cancelled in it, so the claim gets the other."""
    url = str(tmp_path / "imacsr.db")
    with Store.open(url) as a, Store.open(url) as b:
        a.enqueue("g", rows(2))
        first, second = a.grid_run_ids("g")
        held, claiming, claimed = threading.Event(), threading.Event(), threading.Event()
        got: list = []
        during: list[bool] = []

        def claim() -> None:
            claiming.set()
            got.append(b.claim("b", grid="g"))  # blocks on BEGIN IMMEDIATE until `hold` commits
            claimed.set()

        def hold() -> None:
            with a._write() as conn:
                conn.exec_driver_sql("UPDATE runs SET state = 'cancelled' WHERE run_id = ?", (first,))
                held.set()
                claiming.wait(PATIENCE_S)
                time.sleep(0.2)  # give the claim time to reach the lock (not needed for correctness)
                during.append(claimed.is_set())  # nobody writes while the lock is held

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(PATIENCE_S)
        claimer = threading.Thread(target=claim)
        claimer.start()
        holder.join(PATIENCE_S)
        claimer.join(PATIENCE_S)
        assert during == [False]
        assert claimed.is_set() and got[0] is not None and got[0].run_id == second
