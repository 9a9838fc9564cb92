"""Schema versions of the results database and the migrations between them.

The version lives in ``meta.schema_version``. Opening a database (``Store.open``):

- empty file (no tables): create the current schema (models.py) and write the current version;
- ``schema_version`` < current: run the migrations ``MIGRATIONS[v+1] .. MIGRATIONS[current]`` in order,
  in one write transaction, then write the new version;
- ``schema_version`` > current: refuse (StoreError: upgrade imacsr), never guess;
- tables but no ``meta.schema_version``: refuse (not an imacsr database).

A migration is a function ``(connection) -> None`` that brings the schema from version ``v-1`` to ``v``
with plain SQL (SQLite's ALTER TABLE ADD COLUMN / CREATE INDEX), so it works on any SQLAlchemy backend
with the same DDL. History:

- v1: the tables of docs/contracts.md as first written (kept below as ``V1_DDL``: the tests build a
  v1 database from it and upgrade it).
- v2: runs.position, runs.spacing, runs.points, runs.owner_pid, runs.last_val; grid_runs.ord;
  events.reason, events.owner; indexes for ``imacsr status`` on 100,000 runs.
- v3: runs.retries (the retry budget spent, a column instead of a count parsed from event text; filled
  from the v2 events, so an upgrade mid-grid keeps the budget) and runs.code (JSON: the imacsr version,
  git commit and dirty flag that trained the run; NULL for runs finished before v3).
- v4 (cluster): table ``schedulers`` (a scheduler's uuid and lease); runs.owner_ns (the owner's machine +
  PID namespace, for the pid probe), runs.handle (the executor's handle, e.g. ``slurm:<job id>``).
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import Connection, text

from imacsr_cli.store.models import SCHEMA_VERSION

#: The schema of version 1, as SQLite DDL (for tests and for the record).
V1_DDL = [
    "CREATE TABLE meta (key VARCHAR NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE grids (name VARCHAR NOT NULL PRIMARY KEY, title TEXT NOT NULL, reproduces TEXT NOT NULL, "
    "path TEXT NOT NULL, toml TEXT NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL)",
    "CREATE TABLE runs (run_id VARCHAR NOT NULL PRIMARY KEY, spec_json TEXT NOT NULL, model VARCHAR NOT NULL, "
    "variant VARCHAR NOT NULL, dataset VARCHAR NOT NULL, method VARCHAR NOT NULL, num_points INTEGER NOT NULL, "
    "seed INTEGER NOT NULL, state VARCHAR NOT NULL, reason VARCHAR, message TEXT, exit_code INTEGER, "
    "attempts INTEGER NOT NULL, epoch INTEGER NOT NULL, epochs INTEGER NOT NULL, owner VARCHAR, host VARCHAR, "
    "trainer_pid INTEGER, slot VARCHAR, heartbeat_at FLOAT, created_at FLOAT NOT NULL, started_at FLOAT, "
    "finished_at FLOAT, run_dir TEXT)",
    "CREATE TABLE grid_runs (grid VARCHAR NOT NULL REFERENCES grids (name) ON DELETE CASCADE, "
    "run_id VARCHAR NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, cell TEXT NOT NULL, "
    "PRIMARY KEY (grid, run_id))",
    "CREATE TABLE metrics (run_id VARCHAR NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, "
    "epoch INTEGER NOT NULL, split VARCHAR NOT NULL, name VARCHAR NOT NULL, value FLOAT, "
    "PRIMARY KEY (run_id, epoch, split, name))",
    "CREATE TABLE events (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, run_id VARCHAR NOT NULL, "
    "time FLOAT NOT NULL, kind VARCHAR NOT NULL, detail TEXT NOT NULL)",
    "INSERT INTO meta (key, value) VALUES ('schema_version', '1')",
]


def _v1_to_v2(conn: Connection) -> None:
    for sql in (
        "ALTER TABLE runs ADD COLUMN position VARCHAR",
        "ALTER TABLE runs ADD COLUMN spacing INTEGER",
        "ALTER TABLE runs ADD COLUMN points TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE runs ADD COLUMN owner_pid INTEGER",
        "ALTER TABLE runs ADD COLUMN last_val TEXT",
        "ALTER TABLE grid_runs ADD COLUMN ord INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE events ADD COLUMN reason VARCHAR",
        "ALTER TABLE events ADD COLUMN owner VARCHAR",
        "CREATE INDEX IF NOT EXISTS ix_runs_state ON runs (state)",
        "CREATE INDEX IF NOT EXISTS ix_grid_runs_run ON grid_runs (run_id)",
        "CREATE INDEX IF NOT EXISTS ix_grid_runs_grid_ord ON grid_runs (grid, ord)",
        "CREATE INDEX IF NOT EXISTS ix_metrics_run_split ON metrics (run_id, split)",
        "CREATE INDEX IF NOT EXISTS ix_events_run ON events (run_id, id)",
    ):
        conn.execute(text(sql))
    # Fill the new spec columns of existing runs from their spec_json.
    import json

    rows = conn.execute(text("SELECT run_id, spec_json, method FROM runs")).all()
    for run_id, spec_json, method in rows:
        points = json.loads(spec_json).get("points", {}) if spec_json else {}
        imacsr = method != "conventional"
        conn.execute(
            text("UPDATE runs SET position = :p, spacing = :s, points = :n WHERE run_id = :r"),
            {
                "p": points.get("position") if imacsr else None,
                "s": points.get("spacing") if imacsr else None,
                "n": json.dumps(points.get("names", []) if imacsr else []),
                "r": run_id,
            },
        )


def _v2_to_v3(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE runs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE runs ADD COLUMN code TEXT"))
    # v2 counted a retry as a `requeued` event whose detail starts "retry " after the last `retried`;
    # read that once here, so queued runs keep the budget they spent. Later code only reads the column.
    spent: dict[str, int] = {}
    for run_id, kind, detail in conn.execute(text(
            "SELECT e.run_id, e.kind, e.detail FROM events e JOIN runs r ON r.run_id = e.run_id "
            "WHERE r.state IN ('queued', 'running') AND e.kind IN ('retried', 'requeued') ORDER BY e.id")):
        if kind == "retried":
            spent[run_id] = 0
        elif str(detail or "").startswith("retry "):
            spent[run_id] = spent.get(run_id, 0) + 1
    updates = [{"n": n, "r": r} for r, n in spent.items() if n]
    if updates:
        conn.execute(text("UPDATE runs SET retries = :n WHERE run_id = :r"), updates)


def _cluster(conn: Connection) -> None:
    for sql in (
        "CREATE TABLE IF NOT EXISTS schedulers (id VARCHAR NOT NULL PRIMARY KEY, host VARCHAR NOT NULL, "
        "pid INTEGER NOT NULL, ns VARCHAR NOT NULL, executor VARCHAR NOT NULL, started_at FLOAT NOT NULL, "
        "heartbeat_at FLOAT NOT NULL, ended_at FLOAT)",
        "ALTER TABLE runs ADD COLUMN owner_ns VARCHAR",
        "ALTER TABLE runs ADD COLUMN handle VARCHAR",
    ):
        conn.execute(text(sql))


#: MIGRATIONS[v] brings a database from version v-1 to version v.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v1_to_v2, 3: _v2_to_v3, 4: _cluster}

assert sorted(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1)), "a migration is missing"


def upgrade(conn: Connection, from_version: int) -> int:
    """Run every migration after ``from_version`` on ``conn`` (inside the caller's transaction)."""
    version = from_version
    for v in range(from_version + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[v](conn)
        version = v
    conn.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": str(version)})
    return version
