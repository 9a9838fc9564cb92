"""Store: the one place that writes SQL. Idempotent enqueue, atomic claim, owner-checked state
transitions, metric ingest, and read queries that return pandas DataFrames.

``Store`` is built in layers, one module each:

- engine.py   ``Connected``: URL defaults, the SQLite engines (WAL, 30 s busy timeout, writes in
              ``BEGIN IMMEDIATE``, reads in a deferred ``BEGIN``), transactions, fork safety;
- queries.py  ``Queries``: the read-only lookups and queries (status, runs, reports);
- claims.py   ``Claims``: claim, the owner-checked writes of a scheduler, orphan reclaim;
- store.py    ``Store``: opening (schema create / upgrade), grids and enqueue, the user's actions.

Run lifecycle::

    (enqueue) → queued ─claim→ running ─finish→ succeeded | failed
                  ▲                 │ requeue / reclaim_orphans (reason orphaned, interrupted, ...)
                  └─────────────────┘
    queued | running ─cancel→ cancelled;   failed | cancelled ─retry→ queued (attempts reset to 0)

Nothing here imports torch; pandas is imported inside the query methods.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.exc import DBAPIError

from imacsr_cli.errors import NotFound, StoreError
from imacsr_cli.store import migrations
from imacsr_cli.store.claims import Claims
from imacsr_cli.store.engine import LOCK_ENQUEUE, LOCK_SCHEMA, chunks, normalize_url, open_engines, retrying, retrying_methods
from imacsr_cli.store.models import SCHEMA_VERSION, STATES, Base, Event, GridRun, Run
from imacsr_cli.store.queries import cells_of


def _spec_columns(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The denormalised runs columns of a (resolved) spec dict in TOML layout."""
    model, data = spec.get("model", {}), spec.get("data", {})
    method, points, train = spec.get("method", {}), spec.get("points", {}), spec.get("train", {})
    imacsr = method.get("name", "imacsr") != "conventional"
    return {
        "model": model.get("name", ""),
        "variant": model.get("variant", ""),
        "dataset": data.get("name", ""),
        "method": method.get("name", "imacsr"),
        "num_points": int(points.get("count", 0)) if imacsr else 0,
        "seed": int(train.get("seed", 0)),
        "position": points.get("position") if imacsr else None,
        "spacing": points.get("spacing") if imacsr else None,
        "points": json.dumps(list(points.get("names", [])) if imacsr else []),
        "epochs": int(train.get("epochs", 0)),
    }


def _row_parts(row: Any) -> tuple[str | None, Any, Any, str | None]:
    """(run_id, spec, labels, error) of a grid row: a GridRow-like object or a dict."""
    if isinstance(row, Mapping):
        return row.get("run_id"), row.get("spec"), row.get("labels", row.get("cell")), row.get("error")
    return getattr(row, "run_id", None), getattr(row, "spec", None), getattr(row, "labels", None), getattr(row, "error", None)


@retrying_methods
class Store(Claims):
    """The results database. Open with ``Store.open(url)``; use as a context manager or call ``close()``.

    Methods are safe to call from several threads. After ``fork`` the child gets fresh connections
    (the parent's are never reused), but opening a new Store in the child is clearer.
    """

    # ---- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """Open (and create or upgrade) the database at ``url``.

        ``url`` None → env ``IMACSR_DB`` → ``sqlite:///results/imacsr.db``; a plain path is a SQLite file.
        The parent folder of a SQLite file is created. With ``create=False`` (read-only commands) a
        missing SQLite file or a database without imacsr's tables is ``NotFound``: nothing is created.
        An older schema is migrated; a newer schema, a file that is not SQLite, or a database with
        tables but without imacsr's ``meta`` table is a ``StoreError``. Creating and upgrading are
        serialised (SQLite's write lock; an advisory lock on PostgreSQL), so concurrent first opens of
        an empty database all succeed and create the schema once.
        """
        url = normalize_url(url)
        store = cls(url, *open_engines(url, create=create))
        try:
            store._ensure_schema(create)
        except Exception:
            store.close()
            raise
        return store

    def schema_version(self) -> int:
        """The schema version stored in the database."""
        with self._read() as conn:
            return int(conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar_one())

    @retrying
    def _ensure_schema(self, create: bool = True) -> None:
        version = self._check_version(read=True)
        if version == SCHEMA_VERSION:
            return
        if version is None and not create:
            raise NotFound(f"{self.where} holds no imacsr results yet; `imacsr run-grid` creates them")
        with self._write() as conn:  # create or upgrade, re-checking under the write lock
            self._serialize(conn, LOCK_SCHEMA)
            version = self._check_version(conn=conn)
            if version is None:
                Base.metadata.create_all(conn)
                conn.execute(
                    text("INSERT INTO meta (key, value) VALUES ('schema_version', :v)"), {"v": str(SCHEMA_VERSION)}
                )
            elif version < SCHEMA_VERSION:
                migrations.upgrade(conn, version)

    def _check_version(self, read: bool = False, conn: Connection | None = None) -> int | None:
        """The stored schema version, None for an empty database; raises for foreign or newer ones."""
        try:
            if conn is None:
                with self._read() as c:
                    return self._check_version(conn=c)
            tables = set(inspect(conn).get_table_names())
            if not tables:
                return None
            if "meta" not in tables:
                raise StoreError(
                    f"{self.where} is not an imacsr database (it has tables {', '.join(sorted(tables))} "
                    f"and no 'meta'); use another --db"
                )
            value = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
        except DBAPIError as exc:
            failure = self.failure(exc, " is not an imacsr database")
            raise failure from None
        if value is None or not str(value).isdigit():
            raise StoreError(f"{self.where} is not an imacsr database (no schema_version in its meta table)")
        version = int(value)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.where} has schema version {version}; this imacsr knows up to "
                f"{SCHEMA_VERSION}: upgrade imacsr"
            )
        return version

    # ---- grids and enqueue ------------------------------------------------------------------------
    def upsert_grid(self, grid: Any, *, title: str | None = None, reproduces: str | None = None,
                    path: str | None = None, toml: str | None = None) -> None:
        """Insert or update a grid row. ``grid`` is a GridSpec (its name, title, reproduces, path and
        toml_text are used) or a name; the keyword fields override (None = keep / empty)."""
        if isinstance(grid, str):
            fields = {"name": grid, "title": "", "reproduces": "", "path": "", "toml": ""}
        else:
            fields = {"name": grid.name, "title": getattr(grid, "title", "") or "",
                      "reproduces": getattr(grid, "reproduces", "") or "",
                      "path": str(getattr(grid, "path", "") or ""), "toml": getattr(grid, "toml_text", "") or ""}
        for key, value in (("title", title), ("reproduces", reproduces), ("path", path), ("toml", toml)):
            if value is not None:
                fields[key] = value
        with self._write() as conn:
            self._serialize(conn, LOCK_ENQUEUE)
            now = self._now(conn)
            exists = conn.execute(text("SELECT 1 FROM grids WHERE name = :n"), {"n": fields["name"]}).scalar()
            if exists:
                conn.execute(
                    text("UPDATE grids SET title = :title, reproduces = :reproduces, path = :path, toml = :toml, "
                         "updated_at = :now WHERE name = :name"), {**fields, "now": now})
            else:
                conn.execute(
                    text("INSERT INTO grids (name, title, reproduces, path, toml, created_at, updated_at) "
                         "VALUES (:name, :title, :reproduces, :path, :toml, :now, :now)"), {**fields, "now": now})

    def enqueue(self, grid: str, rows: Iterable[Any], *, prune: bool = False) -> dict[str, int]:
        """Add a grid's runs to the queue; idempotent.

        ``rows``: GridRow objects from ``GridSpec.expand()`` (or dicts) with ``run_id``, ``spec``
        (resolved RunSpec or its ``to_dict()``), ``labels`` (list of cell dicts, or one dict) and
        ``error``. A row with an error is refused (StoreError; nothing is written) — filter them first.
        The grid row must exist (``upsert_grid`` first; it is created with empty fields otherwise).

        New runs are inserted ``queued``; existing runs keep their state (a succeeded run is never
        trained twice, a failed one stays failed until ``retry``). A queued, failed or cancelled run
        takes the row's spec_json (same identity; execution-only fields such as data.root may differ). The grid↔run links are upserted with
        the row's cells and its place in the grid order. With ``prune=True`` links of this grid to
        runs not in ``rows`` are removed (the runs themselves stay).

        Returns counts: ``new`` plus the state each already known run was in (``queued``, ``running``,
        ``succeeded``, ``failed``, ``cancelled``) and ``total``.
        """
        items: list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]] = []
        seen: dict[str, int] = {}
        for n, row in enumerate(rows):
            run_id, spec, labels, error = _row_parts(row)
            if error:
                raise StoreError(f"grid {grid!r}: run {n + 1} cannot be enqueued: {error}")
            if not run_id or spec is None:
                raise StoreError(f"grid {grid!r}: run {n + 1} has no run_id or spec")
            spec_dict = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
            if run_id in seen:  # duplicate row: merge its cells into the first
                first = items[seen[run_id]]
                for cell in cells_of(labels):
                    if cell not in first[3]:
                        first[3].append(cell)
                continue
            seen[run_id] = len(items)
            items.append((run_id, json.dumps(spec_dict), spec_dict, cells_of(labels)))

        counts = {"new": 0, **{s: 0 for s in STATES}, "total": len(items)}
        with self._write() as conn:
            # Two enqueues of one grid at once (two run-grids, two hosts) would both insert its new runs;
            # one at a time, the second sees the first's rows and inserts nothing (SQLite: the write lock).
            self._serialize(conn, LOCK_ENQUEUE)
            now = self._now(conn)
            if not conn.execute(text("SELECT 1 FROM grids WHERE name = :n"), {"n": grid}).scalar():
                conn.execute(text("INSERT INTO grids (name, title, reproduces, path, toml, created_at, updated_at) "
                                  "VALUES (:n, '', '', '', '', :t, :t)"), {"n": grid, "t": now})
            existing: dict[str, str] = {}
            ids = [i[0] for i in items]
            for chunk in chunks(ids):
                for run_id, state in conn.execute(select(Run.run_id, Run.state).where(Run.run_id.in_(chunk))):
                    existing[run_id] = state
            new_runs, new_events = [], []
            refresh = []
            for run_id, spec_json, spec_dict, _ in items:
                if run_id in existing:
                    counts[existing[run_id]] += 1
                    if existing[run_id] in ("queued", "failed", "cancelled"):
                        refresh.append({"r": run_id, "s": spec_json})
                    continue
                counts["new"] += 1
                new_runs.append({"run_id": run_id, "spec_json": spec_json, **_spec_columns(spec_dict),
                                 "state": "queued", "attempts": 0, "retries": 0, "epoch": 0, "created_at": now})
                new_events.append({"run_id": run_id, "time": now, "kind": "enqueued",
                                   "detail": f"grid {grid}", "reason": None, "owner": None})
            if refresh:  # same run_id = same identity; take the newest execution-only fields (data.root...)
                conn.execute(text("UPDATE runs SET spec_json = :s WHERE run_id = :r AND spec_json != :s"), refresh)
            if new_runs:
                conn.execute(Run.__table__.insert(), new_runs)
                conn.execute(Event.__table__.insert(), new_events)
            links = [{"grid": grid, "run_id": run_id, "cell": json.dumps(cells, sort_keys=True), "ord": k}
                     for k, (run_id, _, _, cells) in enumerate(items)]
            if links:
                conn.execute(
                    text("INSERT INTO grid_runs (grid, run_id, cell, ord) VALUES (:grid, :run_id, :cell, :ord) "
                         "ON CONFLICT (grid, run_id) DO UPDATE SET cell = excluded.cell, ord = excluded.ord"),
                    links,
                )
            if prune:
                keep = set(ids)
                stale = [r for (r,) in conn.execute(text("SELECT run_id FROM grid_runs WHERE grid = :g"), {"g": grid})
                         if r not in keep]
                for chunk in chunks(stale):
                    conn.execute(GridRun.__table__.delete().where(GridRun.grid == grid, GridRun.run_id.in_(chunk)))
            conn.execute(text("UPDATE grids SET updated_at = :t WHERE name = :n"), {"t": now, "n": grid})
        return counts

    def plan(self, grid: str | None = None, run_ids: Sequence[str] | None = None) -> dict[str, int]:
        """Counts by state for a grid's runs or for given run ids (without changing anything).

        With ``run_ids``, ids not in the database count as ``new`` — so ``plan(run_ids=[r.run_id for r in
        rows])`` before ``enqueue`` says "N new, N already done, N failed, N running elsewhere".
        Keys: ``new``, ``queued``, ``running``, ``succeeded``, ``failed``, ``cancelled``, ``total``.
        """
        counts = {"new": 0, **{s: 0 for s in STATES}, "total": 0}
        with self._read() as conn:
            if run_ids is not None:
                ids = list(dict.fromkeys(run_ids))
                known: dict[str, str] = {}
                for chunk in chunks(ids):
                    q = select(Run.run_id, Run.state).where(Run.run_id.in_(chunk))
                    if grid is not None:
                        q = q.join(GridRun, GridRun.run_id == Run.run_id).where(GridRun.grid == grid)
                    known.update(conn.execute(q).all())
                for run_id in ids:
                    counts[known.get(run_id, "new")] += 1
                counts["total"] = len(ids)
            elif grid is not None:
                for state, n in conn.execute(
                    text("SELECT r.state, COUNT(*) FROM grid_runs g JOIN runs r ON r.run_id = g.run_id "
                         "WHERE g.grid = :g GROUP BY r.state"), {"g": grid}):
                    counts[state] += n
                    counts["total"] += n
            else:
                for state, n in conn.execute(text("SELECT state, COUNT(*) FROM runs GROUP BY state")):
                    counts[state] += n
                    counts["total"] += n
        return counts

    # ---- user actions -----------------------------------------------------------------------------
    def cancel(self, run_id: str, message: str | None = None) -> bool:
        """Cancel a queued or running run (→ ``cancelled``, reason ``cancelled``). A running run's owner
        gets NotOwner on its next write and must stop the trainer. Returns False if the run had already
        ended (succeeded, failed, cancelled); NotFound if there is no such run (a unique prefix works)."""
        with self._write() as conn:
            now = self._now(conn)
            run_id = self._full_id(conn, run_id)
            res = conn.execute(text(
                "UPDATE runs SET state = 'cancelled', reason = 'cancelled', message = :m, finished_at = :t "
                "WHERE run_id = :r AND state IN ('queued', 'running')"),
                {"m": message or "cancelled by the user", "t": now, "r": run_id})
            if res.rowcount != 1:
                return False
            self._event(conn, run_id, "cancelled", message or "cancelled by the user", reason="cancelled", now=now)
            return True

    def cancel_grid(self, grid: str) -> list[str]:
        """Cancel every queued or running run of ``grid`` (runs shared with other grids too)."""
        with self._read() as conn:
            ids = [r for (r,) in conn.execute(text(
                "SELECT g.run_id FROM grid_runs g JOIN runs r ON r.run_id = g.run_id "
                "WHERE g.grid = :g AND r.state IN ('queued', 'running') ORDER BY g.ord"), {"g": grid})]
        return [r for r in ids if self.cancel(r, f"grid {grid} cancelled by the user")]

    def retry(self, run_id: str) -> bool:
        """Put a failed or cancelled run back in the queue with ``attempts`` = 0 (a fresh retry budget).
        Returns False if it is already queued or running; StoreError if it succeeded; NotFound if missing."""
        with self._write() as conn:
            now = self._now(conn)
            run_id = self._full_id(conn, run_id)
            state = conn.execute(text("SELECT state FROM runs WHERE run_id = :r"), {"r": run_id}).scalar()
            if state == "succeeded":
                raise StoreError(f"run {run_id} succeeded; only failed or cancelled runs can be retried")
            if state in ("queued", "running"):
                return False
            conn.execute(text(
                "UPDATE runs SET state = 'queued', reason = NULL, message = NULL, exit_code = NULL, attempts = 0, "
                "retries = 0, "
                "owner = NULL, owner_pid = NULL, owner_ns = NULL, trainer_pid = NULL, slot = NULL, handle = NULL, "
                "finished_at = NULL "
                "WHERE run_id = :r"), {"r": run_id})
            self._event(conn, run_id, "retried", f"was {state}", now=now)
            return True

    def rerun(self, run_id: str) -> bool:
        """Put a succeeded run back in the queue to be trained again on purpose (``runs rerun``): its
        metrics are dropped (the caller has set its result files aside), ``attempts`` = 0. Returns
        False if it is not succeeded (``retry`` is for failed runs); NotFound if missing."""
        now = self._clock()
        with self._write() as conn:
            run_id = self._full_id(conn, run_id)
            res = conn.execute(text(
                "UPDATE runs SET state = 'queued', reason = NULL, message = NULL, exit_code = NULL, attempts = 0, "
                "epoch = 0, owner = NULL, owner_pid = NULL, trainer_pid = NULL, slot = NULL, finished_at = NULL "
                "WHERE run_id = :r AND state = 'succeeded'"), {"r": run_id})
            if res.rowcount != 1:
                return False
            conn.execute(text("DELETE FROM metrics WHERE run_id = :r"), {"r": run_id})
            self._event(conn, run_id, "rerun", "was succeeded; trained again on request", now=now)
            return True

    def retry_failed(self, grid: str | None = None, *, include_cancelled: bool = False) -> list[str]:
        """``retry`` every failed (and, optionally, cancelled) run, of one grid or of all. Returns their ids."""
        states = "('failed', 'cancelled')" if include_cancelled else "('failed')"
        with self._read() as conn:
            if grid is None:
                ids = [r for (r,) in conn.execute(text(f"SELECT run_id FROM runs WHERE state IN {states}"))]
            else:
                ids = [r for (r,) in conn.execute(text(
                    f"SELECT g.run_id FROM grid_runs g JOIN runs r ON r.run_id = g.run_id "
                    f"WHERE g.grid = :g AND r.state IN {states} ORDER BY g.ord"), {"g": grid})]
        return [r for r in ids if self.retry(r)]
