"""Schema versions: fresh create, upgrade of a v1 database, refusal of newer / foreign databases."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
from storehelp import spec_dict

from imacsr_cli.errors import StoreError
from imacsr_cli.store import SCHEMA_VERSION, Store
from imacsr_cli.store.migrations import V1_DDL


def _schema(path) -> dict:
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        cols = {t: sorted(r[1] for r in con.execute(f"PRAGMA table_info({t})")) for t in tables}
        idx = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                               "AND name NOT LIKE 'sqlite_%'"))
        return {"columns": cols, "indexes": idx}
    finally:
        con.close()


def test_fresh_database_has_current_version(tmp_path):
    with Store.open(str(tmp_path / "a.db")) as s:
        assert s.schema_version() == SCHEMA_VERSION == 4
    with Store.open(str(tmp_path / "a.db")) as s:  # reopening changes nothing
        assert s.schema_version() == 4
    con = sqlite3.connect(tmp_path / "a.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_upgrade_from_v1(tmp_path):
    old = tmp_path / "old.db"
    con = sqlite3.connect(old)
    for sql in V1_DDL:
        con.execute(sql)
    spec = spec_dict(7)
    con.execute(
        "INSERT INTO runs (run_id, spec_json, model, variant, dataset, method, num_points, seed, state, attempts, "
        "epoch, epochs, created_at) VALUES ('r1', ?, 'deeplabv3plus', 'smp', 'synthetic', 'imacsr', 2, 7, "
        "'succeeded', 1, 3, 3, 1.0)", (json.dumps(spec),))
    con.execute("INSERT INTO grids VALUES ('g', 'T', '', '', '', 1.0, 1.0)")
    con.execute("INSERT INTO grid_runs VALUES ('g', 'r1', '[{\"figure\": \"3\"}]')")
    con.execute("INSERT INTO metrics VALUES ('r1', 3, 'final', 'mIoU', 0.5)")
    con.execute("INSERT INTO events (run_id, time, kind, detail) VALUES ('r1', 1.0, 'succeeded', '')")
    con.commit()
    con.close()
    with Store.open(str(old)) as s:
        assert s.schema_version() == 4
        rec = s.get("r1")
        assert rec.retries == 0 and s.run("r1")["code"] is None  # finished before v3: no code recorded
        assert (rec.state, rec.position, rec.spacing, rec.seed) == ("succeeded", "input", 2, 7)
        assert s.run("r1")["points"] == ["stem", "layer1.1"]
        assert s.runs_frame("g")["final/mIoU"].tolist() == [0.5]
        assert s.grid_summary()["succeeded"].tolist() == [1]
        assert s.run_events("r1")["kind"].tolist() == ["succeeded"]
    fresh = tmp_path / "fresh.db"
    Store.open(str(fresh)).close()
    assert _schema(old) == _schema(fresh)  # an upgraded database is the same as a new one


def test_upgrade_from_v2_keeps_the_retry_budget_spent(tmp_path):
    """v3 keeps the retries spent in a column; the upgrade counts them once from the v2 event text."""
    from sqlalchemy import create_engine

    from imacsr_cli.store.migrations import MIGRATIONS

    old = tmp_path / "v2.db"
    con = sqlite3.connect(old)
    for sql in V1_DDL:
        con.execute(sql)
    con.commit()
    con.close()
    engine = create_engine(f"sqlite:///{old}")
    with engine.begin() as conn:
        MIGRATIONS[2](conn)
        conn.exec_driver_sql("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        for run_id, state in (("q1", "queued"), ("q2", "queued"), ("f1", "failed")):
            conn.exec_driver_sql(
                "INSERT INTO runs (run_id, spec_json, model, variant, dataset, method, num_points, seed, state, "
                "attempts, epoch, epochs, created_at) VALUES (?, ?, 'deeplabv3plus', 'smp', 'synthetic', "
                "'imacsr', 2, 7, ?, 1, 0, 3, 1.0)", (run_id, json.dumps(spec_dict(7)), state))
        events = [("q1", "requeued", "retry 1/3 after oom: out of memory"), ("q1", "requeued", "interrupted"),
                  ("q1", "requeued", "retry 2/3 after oom: out of memory"),
                  ("q2", "requeued", "retry 1/3 after oom"), ("q2", "retried", "was failed"),
                  ("q2", "requeued", "retry 1/3 after interrupted"),
                  ("f1", "requeued", "retry 1/1 after oom")]
        for run_id, kind, detail in events:
            conn.exec_driver_sql("INSERT INTO events (run_id, time, kind, detail) VALUES (?, 1.0, ?, ?)",
                                 (run_id, kind, detail))
    engine.dispose()
    with Store.open(str(old)) as s:
        assert s.schema_version() == 4
        # q1: two retries; q2: one since the manual retry; f1 has ended (a `runs retry` resets it anyway).
        assert [s.get(r).retries for r in ("q1", "q2", "f1")] == [2, 1, 0]
    fresh = tmp_path / "fresh.db"
    Store.open(str(fresh)).close()
    assert _schema(old) == _schema(fresh)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    Store.open(str(path)).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError) as err:
        Store.open(str(path))
    assert str(err.value) == f"database {path} has schema version 99; this imacsr knows up to 4: upgrade imacsr"


def test_foreign_sqlite_is_refused(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError) as err:
        Store.open(str(path))
    assert str(err.value) == f"{path} is not an imacsr database (it has tables users and no 'meta'); use another --db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError) as err:
        Store.open(str(path))
    assert str(err.value) == f"{path} is not an imacsr database (no schema_version in its meta table)"


def test_non_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError) as err:
        Store.open(str(path))
    assert str(err.value) == f"{path} is not an imacsr database: file is not a database"


def test_store_does_not_import_torch():
    code = "import sys, imacsr_cli.store; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---- both backends: read-only opens, concurrent first opens and enqueues, a missing driver ----------
OPEN_AND_ENQUEUE = """
import sys
from imacsr_cli.store import Store
sys.path.insert(0, sys.argv[3])
from storehelp import rows
url, what = sys.argv[1], sys.argv[2]
with Store.open(url) as s:
    if what == "enqueue":
        counts = s.enqueue("g", rows(20))
        print(counts["new"])
    else:
        print(s.schema_version())
"""


def _at_once(db_url, what: str, n: int) -> list[str]:
    """``n`` processes that each open ``db_url`` (and enqueue one grid) at the same moment."""
    from pathlib import Path

    here = str(Path(__file__).parent)
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AND_ENQUEUE, db_url, what, here],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err  # UniqueViolation in create_all / on the primary keys landed here
        outs.append(out.strip())
    return outs


def test_concurrent_first_opens_all_succeed(db_url):
    assert _at_once(db_url, "open", 8) == [str(SCHEMA_VERSION)] * 8
    with Store.open(db_url) as s:
        assert s.schema_version() == SCHEMA_VERSION


def test_concurrent_enqueues_of_an_empty_database_run_each_once(db_url):
    news = [int(n) for n in _at_once(db_url, "enqueue", 10)]
    # one enqueue inserted the 20 runs, the nine others found them there: nothing twice, nothing lost
    assert sorted(news) == [0] * 9 + [20]
    with Store.open(db_url) as s:
        assert s.plan("g") == {"new": 0, "queued": 20, "running": 0, "succeeded": 0, "failed": 0,
                               "cancelled": 0, "total": 20}
        assert (s.runs_frame("g")["run_id"].nunique(), len(s.run_events("run00003"))) == (20, 1)


def test_read_only_open_creates_no_schema(db_url):
    from imacsr_cli.errors import NotFound

    if db_url.startswith("sqlite"):
        from pathlib import Path

        path = Path(db_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()  # an empty file: exists, no tables
    with pytest.raises(NotFound, match="holds no imacsr results yet; `imacsr run-grid` creates them"):
        Store.open(db_url, create=False)
    with Store.open(db_url) as s:  # nothing was created: the tables come with the first writer
        assert s.schema_version() == SCHEMA_VERSION


def test_missing_driver_is_one_line_naming_the_extra():
    with pytest.raises(StoreError) as err:
        Store.open("postgresql+psycopg2://u@/db?host=/nowhere")  # psycopg2 is not installed here
    assert str(err.value) == ("--db postgresql+psycopg2://u@/db?host=/nowhere: the psycopg2 driver is not "
                              "installed (pip install 'imacsr[postgres]')")
