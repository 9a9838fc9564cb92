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
        assert s.schema_version() == SCHEMA_VERSION == 2
    with Store.open(str(tmp_path / "a.db")) as s:  # reopening changes nothing
        assert s.schema_version() == 2
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
        assert s.schema_version() == 2
        rec = s.get("r1")
        assert (rec.state, rec.position, rec.spacing, rec.seed) == ("succeeded", "input", 2, 7)
        assert s.run("r1")["points"] == ["stem", "layer1.1"]
        assert s.runs_frame("g")["final/mIoU"].tolist() == [0.5]
        assert s.grid_summary()["succeeded"].tolist() == [1]
        assert s.run_events("r1")["kind"].tolist() == ["succeeded"]
    fresh = tmp_path / "fresh.db"
    Store.open(str(fresh)).close()
    assert _schema(old) == _schema(fresh)  # an upgraded database is the same as a new one


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    Store.open(str(path)).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError) as err:
        Store.open(str(path))
    assert str(err.value) == f"database {path} has schema version 99; this imacsr knows up to 2: upgrade imacsr"


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
