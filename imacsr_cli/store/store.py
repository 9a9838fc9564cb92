"""Store: the one place that writes SQL. Idempotent enqueue, atomic claim, owner-checked state
transitions, metric ingest, and read queries that return pandas DataFrames.

Concurrency model (SQLite, the default):

- WAL journal, ``PRAGMA busy_timeout`` = 30 s on every connection.
- Two engines on the same file: writes go through an engine whose transactions start with
  ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers queue on the busy timeout
  instead of failing with "database is locked" when a read lock is upgraded); reads go through an
  engine with plain deferred ``BEGIN``, so readers see a consistent snapshot and never block the writer
  nor wait for it (WAL).
- ``claim`` selects and flips one queued run inside one ``BEGIN IMMEDIATE`` transaction, with
  ``UPDATE ... WHERE state = 'queued'`` and a rowcount check: two schedulers on one database never get
  the same run.
- Every write that concerns a claimed run (``mark_started``, ``heartbeat``, ``record_epoch``,
  ``finish``, ``requeue``) names its ``owner`` and is refused with ``NotOwner`` unless the run is
  ``running`` and owned by that owner: a scheduler whose run was reclaimed (or cancelled) learns it on
  its next write and must stop that run's trainer.

Run lifecycle::

    (enqueue) → queued ─claim→ running ─finish→ succeeded | failed
                  ▲                 │ requeue / reclaim_orphans (reason orphaned, interrupted, ...)
                  └─────────────────┘
    queued | running ─cancel→ cancelled;   failed | cancelled ─retry→ queued (attempts reset to 0)

Nothing here imports torch; pandas is imported inside the query methods.
"""

from __future__ import annotations

import json
import os
import socket
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from imacsr_cli.errors import NotFound, StoreError
from imacsr_cli.store import migrations
from imacsr_cli.store.models import REASONS, SCHEMA_VERSION, STATES, Base, Event, GridRun, Run

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DEFAULT_URL = "sqlite:///results/imacsr.db"
BUSY_TIMEOUT_S = 30.0
_CHUNK = 500  # ids per IN (...) clause

#: Dataset-level metric names (result.json metrics.dataset; also the val metrics of epoch events).
MAIN_METRICS = ("mIoU", "mF1", "mPrecision", "mRecall")


class NotOwner(StoreError):
    """A write about a run that the writer does not own (any more): it was reclaimed, cancelled or
    finished. The scheduler that gets this must stop the run's trainer and forget the run."""


@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``, as returned by ``claim`` and ``get``. ``spec_json`` is exactly what the
    trainer wants in RUN_DIR/spec.json; ``spec`` is the same as a dict (TOML layout)."""

    run_id: str
    spec_json: str
    model: str
    variant: str
    dataset: str
    method: str
    num_points: int
    seed: int
    position: str | None
    spacing: int | None
    state: str
    reason: str | None
    message: str | None
    exit_code: int | None
    attempts: int
    epoch: int
    epochs: int
    owner: str | None
    owner_pid: int | None
    host: str | None
    trainer_pid: int | None
    slot: str | None
    heartbeat_at: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    run_dir: str | None

    @property
    def spec(self) -> dict[str, Any]:
        """The run's spec as a dict (TOML layout), parsed from ``spec_json``."""
        return json.loads(self.spec_json)


_RECORD_COLUMNS = tuple(RunRecord.__dataclass_fields__)


def default_url() -> str:
    """The database URL when none is given: env ``IMACSR_DB``, else ``sqlite:///results/imacsr.db``."""
    return os.environ.get("IMACSR_DB") or DEFAULT_URL


def normalize_url(url: str | None) -> str:
    """``None`` → ``default_url()``; a plain path (no ``://``) → ``sqlite:///<absolute path>``."""
    url = url or default_url()
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def final_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Flatten a parsed result.json into final metric rows (name → value), as stored by ``finish``:
    ``mIoU, mF1, mPrecision, mRecall`` (dataset level), ``paper/<same>`` (eq. 13, per image),
    ``iou/<class>`` (per class; classes with no value are left out), ``wall_seconds``, ``images_per_s``.
    ``per_class.iou`` may be a dict {class: value} or a list aligned with ``result["classes"]``."""
    out: dict[str, float] = {}
    metrics = result.get("metrics") or {}
    for prefix, key in (("", "dataset"), ("paper/", "paper")):
        block = metrics.get(key) or {}
        for name in MAIN_METRICS:
            if block.get(name) is not None:
                out[prefix + name] = float(block[name])
        if key == "dataset":
            iou = (block.get("per_class") or {}).get("iou") or {}
            if isinstance(iou, list):  # one value per class, in the order of result["classes"]
                classes = result.get("classes") or [str(i) for i in range(len(iou))]
                iou = dict(zip(classes, iou))
            for cls, value in iou.items():
                if value is not None:
                    out[f"iou/{cls}"] = float(value)
    for name in ("wall_seconds", "images_per_s"):
        if isinstance(result.get(name), (int, float)):
            out[name] = float(result[name])
    return out


def _local_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _chunks(items: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


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


def _cells(labels: Any) -> list[dict[str, Any]]:
    if labels is None:
        return []
    if isinstance(labels, Mapping):
        return [dict(labels)] if labels else []
    return [dict(c) for c in labels]


class Store:
    """The results database. Open with ``Store.open(url)``; use as a context manager or call ``close()``.

    Methods are safe to call from several threads. After ``fork`` the child gets fresh connections
    (the parent's are never reused), but opening a new Store in the child is clearer.
    """

    def __init__(self, url: str, write_engine: Engine, read_engine: Engine, clock: Callable[[], float] = time.time):
        self.url = url
        self._w = write_engine
        self._r = read_engine
        self._clock = clock
        # A forked child must not reuse the parent's pooled connections (SQLAlchemy's pooling docs).
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    # ---- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """Open (and create or upgrade) the database at ``url``.

        ``url`` None → env ``IMACSR_DB`` → ``sqlite:///results/imacsr.db``; a plain path is a SQLite file.
        The parent folder of a SQLite file is created. With ``create=False`` a missing SQLite file is
        ``NotFound`` (for read-only commands). An older schema is migrated; a newer schema, a file
        that is not SQLite, or a SQLite file without imacsr's ``meta`` table is a ``StoreError``.
        """
        url = normalize_url(url)
        parsed = make_url(url)
        is_sqlite = parsed.get_backend_name() == "sqlite"
        memory = is_sqlite and parsed.database in (None, "", ":memory:")
        if is_sqlite and not memory:
            path = Path(parsed.database)
            if not path.exists():
                if not create:
                    raise NotFound(f"no results database at {path}; `imacsr run-grid` creates it")
                path.parent.mkdir(parents=True, exist_ok=True)
        if is_sqlite:
            w = _sqlite_engine(url, immediate=True, memory=memory)
            r = w if memory else _sqlite_engine(url, immediate=False, memory=False)
        else:
            w = r = create_engine(url, future=True)
        store = cls(url, w, r)
        try:
            store._ensure_schema()
        except Exception:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Dispose of the connection pools."""
        self._w.dispose()
        if self._r is not self._w:
            self._r.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def where(self) -> str:
        """The database as a user knows it: the SQLite file path, or the URL without password."""
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            return parsed.database or ":memory:"
        return parsed.render_as_string(hide_password=True)

    def schema_version(self) -> int:
        """The schema version stored in the database."""
        with self._read() as conn:
            return int(conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar_one())

    def _ensure_schema(self) -> None:
        version = self._check_version(read=True)
        if version == SCHEMA_VERSION:
            return
        with self._write() as conn:  # create or upgrade, re-checking under the write lock
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
            raise StoreError(f"{self.where} is not an imacsr database: {exc.orig}") from None
        if value is None or not str(value).isdigit():
            raise StoreError(f"{self.where} is not an imacsr database (no schema_version in its meta table)")
        version = int(value)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.where} has schema version {version}; this imacsr knows up to "
                f"{SCHEMA_VERSION}: upgrade imacsr"
            )
        return version

    # ---- transactions -----------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite); commits on success, rolls back on error."""
        try:
            with self._w.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"{self.where}: {exc.orig}") from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction (deferred BEGIN: a consistent snapshot that never blocks the writer)."""
        with self._r.connect() as conn:
            try:
                yield conn
            finally:
                conn.rollback()

    def _event(self, conn: Connection, run_id: str, kind: str, detail: str = "", reason: str | None = None,
               owner: str | None = None, now: float | None = None) -> None:
        conn.execute(
            Event.__table__.insert(),
            {"run_id": run_id, "time": now if now is not None else self._clock(), "kind": kind,
             "detail": detail, "reason": reason, "owner": owner},
        )

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
        now = self._clock()
        with self._write() as conn:
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
                for cell in _cells(labels):
                    if cell not in first[3]:
                        first[3].append(cell)
                continue
            seen[run_id] = len(items)
            items.append((run_id, json.dumps(spec_dict), spec_dict, _cells(labels)))

        counts = {"new": 0, **{s: 0 for s in STATES}, "total": len(items)}
        now = self._clock()
        with self._write() as conn:
            if not conn.execute(text("SELECT 1 FROM grids WHERE name = :n"), {"n": grid}).scalar():
                conn.execute(text("INSERT INTO grids (name, title, reproduces, path, toml, created_at, updated_at) "
                                  "VALUES (:n, '', '', '', '', :t, :t)"), {"n": grid, "t": now})
            existing: dict[str, str] = {}
            ids = [i[0] for i in items]
            for chunk in _chunks(ids):
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
                                 "state": "queued", "attempts": 0, "epoch": 0, "created_at": now})
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
                for chunk in _chunks(stale):
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
                for chunk in _chunks(ids):
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

    # ---- claim and the owner's writes -------------------------------------------------------------
    def claim(self, owner: str, *, host: str | None = None, pid: int | None = None, grid: str | None = None,
              run_ids: Sequence[str] | None = None, fallback: bool = False) -> RunRecord | None:
        """Atomically take one queued run: it becomes ``running``, owned by ``owner``; ``attempts`` + 1.

        Candidates: the queued runs of ``grid`` in grid order, restricted to ``run_ids`` if given (then in
        the order of ``run_ids`` when no grid is given); with neither, every queued run, oldest first.
        With ``fallback=True`` and no candidate in ``grid``/``run_ids``, any queued run is taken.
        ``host`` (default this host) and ``pid`` (default this process) identify the owner scheduler for
        ``reclaim_orphans``. Returns the claimed run, or None when nothing is queued.
        """
        host = host or socket.gethostname()
        pid = os.getpid() if pid is None else pid
        now = self._clock()
        with self._write() as conn:
            run_id = self._pick(conn, grid, run_ids)
            if run_id is None and fallback and (grid is not None or run_ids is not None):
                run_id = self._pick(conn, None, None)
            if run_id is None:
                return None
            res = conn.execute(
                text("UPDATE runs SET state = 'running', owner = :o, owner_pid = :p, host = :h, "
                     "attempts = attempts + 1, heartbeat_at = :t, reason = NULL, message = NULL, exit_code = NULL, "
                     "trainer_pid = NULL, slot = NULL, finished_at = NULL "
                     "WHERE run_id = :r AND state = 'queued'"),
                {"o": owner, "p": pid, "h": host, "t": now, "r": run_id},
            )
            if res.rowcount != 1:  # cannot happen under BEGIN IMMEDIATE; never hand out a run twice
                return None
            self._event(conn, run_id, "claimed", f"by {owner} on {host} (pid {pid})", owner=owner, now=now)
            return self._record(conn, run_id)

    def _pick(self, conn: Connection, grid: str | None, run_ids: Sequence[str] | None) -> str | None:
        if grid is not None:
            sql = ("SELECT g.run_id FROM grid_runs g JOIN runs r ON r.run_id = g.run_id "
                   "WHERE g.grid = :g AND r.state = 'queued' ORDER BY g.ord, g.run_id")
            if run_ids is None:
                return conn.execute(text(sql + " LIMIT 1"), {"g": grid}).scalar()
            wanted = set(run_ids)
            for (run_id,) in conn.execute(text(sql), {"g": grid}):
                if run_id in wanted:
                    return run_id
            return None
        if run_ids is not None:
            queued: set[str] = set()
            ids = list(run_ids)
            for chunk in _chunks(ids):
                queued.update(conn.execute(
                    select(Run.run_id).where(Run.run_id.in_(chunk), Run.state == "queued")).scalars())
            return next((r for r in ids if r in queued), None)
        return conn.execute(
            text("SELECT run_id FROM runs WHERE state = 'queued' ORDER BY created_at, run_id LIMIT 1")).scalar()

    def _owned_update(self, conn: Connection, run_id: str, owner: str, sets: str, params: dict[str, Any]) -> None:
        res = conn.execute(
            text(f"UPDATE runs SET {sets} WHERE run_id = :run_id AND owner = :owner AND state = 'running'"),
            {**params, "run_id": run_id, "owner": owner},
        )
        if res.rowcount != 1:
            row = conn.execute(text("SELECT state, owner FROM runs WHERE run_id = :r"), {"r": run_id}).first()
            if row is None:
                raise NotFound(f"no run {run_id!r}; `imacsr status --runs` lists them")
            raise NotOwner(
                f"run {run_id} is {row.state} and owned by {row.owner or 'nobody'}, not by {owner}: write refused"
            )

    def mark_started(self, run_id: str, owner: str, *, trainer_pid: int | None, slot: str | None,
                     run_dir: str | Path | None) -> None:
        """The owner launched the run's trainer: record its pid, slot (e.g. "cuda:0", "cpu:1"), RUN_DIR
        and ``started_at``; refreshes the heartbeat. NotOwner if ``owner`` does not own the run."""
        now = self._clock()
        with self._write() as conn:
            self._owned_update(conn, run_id, owner,
                               "trainer_pid = :pid, slot = :slot, run_dir = :dir, started_at = :t, heartbeat_at = :t",
                               {"pid": trainer_pid, "slot": slot, "dir": str(run_dir) if run_dir else None, "t": now})
            self._event(conn, run_id, "started", f"pid {trainer_pid} on {slot}", owner=owner, now=now)

    def heartbeat(self, run_id: str, owner: str, epoch: int | None = None) -> None:
        """The run is alive: ``heartbeat_at`` = now (and ``epoch`` = last finished epoch, if given).
        NotOwner if ``owner`` does not own the run any more (reclaimed or cancelled: stop the trainer)."""
        with self._write() as conn:
            if epoch is None:
                self._owned_update(conn, run_id, owner, "heartbeat_at = :t", {"t": self._clock()})
            else:
                self._owned_update(conn, run_id, owner, "heartbeat_at = :t, epoch = :e",
                                   {"t": self._clock(), "e": int(epoch)})

    def record_epoch(self, run_id: str, owner: str, epoch: int, train: Mapping[str, float] | None = None,
                     val: Mapping[str, float] | None = None, *, epochs: int | None = None) -> None:
        """Ingest one ``epoch`` event: metric rows (split ``train`` and ``val``), ``runs.epoch`` = epoch,
        the heartbeat, the last val metrics, and an ``epoch`` event. Idempotent: re-ingesting the same
        epoch upserts the same rows and adds no second event. ``epochs`` updates the planned total.
        NotOwner if ``owner`` does not own the run."""
        now = self._clock()
        rows = [{"run_id": run_id, "epoch": int(epoch), "split": split, "name": name, "value": _num(value)}
                for split, values in (("train", train or {}), ("val", val or {})) for name, value in values.items()]
        with self._write() as conn:
            sets = "epoch = :e, heartbeat_at = :t"
            params: dict[str, Any] = {"e": int(epoch), "t": now}
            if val:
                sets += ", last_val = :v"
                params["v"] = json.dumps({k: _num(v) for k, v in val.items()})
            if epochs is not None:
                sets += ", epochs = :n"
                params["n"] = int(epochs)
            self._owned_update(conn, run_id, owner, sets, params)
            seen = conn.execute(text("SELECT 1 FROM metrics WHERE run_id = :r AND epoch = :e AND split IN "
                                     "('train', 'val') LIMIT 1"), {"r": run_id, "e": int(epoch)}).scalar()
            self._upsert_metrics(conn, rows)
            if not seen:
                detail = f"epoch {epoch}" + (f"/{epochs}" if epochs else "")
                if val and val.get("mIoU") is not None:
                    detail += f" val mIoU {float(val['mIoU']):.4f}"
                self._event(conn, run_id, "epoch", detail, owner=owner, now=now)

    @staticmethod
    def _upsert_metrics(conn: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(
                text("INSERT INTO metrics (run_id, epoch, split, name, value) VALUES (:run_id, :epoch, :split, "
                     ":name, :value) ON CONFLICT (run_id, epoch, split, name) DO UPDATE SET value = excluded.value"),
                rows,
            )

    def finish(self, run_id: str, owner: str, state: str, reason: str | None = None, message: str | None = None,
               exit_code: int | None = None, final: Mapping[str, Any] | None = None) -> None:
        """End the owner's run: ``state`` is ``succeeded`` or ``failed`` (with a ``reason`` from
        models.REASONS and a one-line ``message``). ``final`` is the parsed result.json: its metrics are
        stored with split ``final`` at epoch = its ``epochs`` (see ``final_metrics``). NotOwner if
        ``owner`` does not own the run (it was reclaimed or cancelled meanwhile: nothing is written)."""
        if state not in ("succeeded", "failed"):
            raise ValueError(f"finish: state must be 'succeeded' or 'failed', got {state!r}")
        if reason is not None and reason not in REASONS:
            raise ValueError(f"finish: unknown reason {reason!r}; expected one of {', '.join(REASONS)}")
        now = self._clock()
        with self._write() as conn:
            sets = ("state = :s, reason = :reason, message = :m, exit_code = :x, finished_at = :t, heartbeat_at = :t")
            params: dict[str, Any] = {"s": state, "reason": reason, "m": message, "x": exit_code, "t": now}
            if final is not None and isinstance(final.get("epochs"), int):
                sets += ", epoch = :e"
                params["e"] = final["epochs"]
            self._owned_update(conn, run_id, owner, sets, params)
            if final is not None:
                epoch = final.get("epochs")
                if not isinstance(epoch, int):
                    epoch = conn.execute(text("SELECT epoch FROM runs WHERE run_id = :r"), {"r": run_id}).scalar()
                self._upsert_metrics(conn, [
                    {"run_id": run_id, "epoch": int(epoch or 0), "split": "final", "name": k, "value": v}
                    for k, v in final_metrics(final).items()
                ])
            detail = message or (f"exit code {exit_code}" if exit_code is not None else "")
            self._event(conn, run_id, state, detail, reason=reason, owner=owner, now=now)

    def requeue(self, run_id: str, owner: str, reason: str, message: str | None = None) -> None:
        """The owner gives its run back to the queue (e.g. interrupted, or a retry after a crash):
        ``running`` → ``queued`` with ``reason``; owner cleared, ``attempts`` kept. NotOwner otherwise."""
        if reason not in REASONS:
            raise ValueError(f"requeue: unknown reason {reason!r}; expected one of {', '.join(REASONS)}")
        now = self._clock()
        with self._write() as conn:
            self._owned_update(conn, run_id, owner,
                               "state = 'queued', reason = :reason, message = :m, owner = NULL, owner_pid = NULL, "
                               "trainer_pid = NULL, slot = NULL", {"reason": reason, "m": message})
            self._event(conn, run_id, "requeued", message or "", reason=reason, owner=owner, now=now)

    def reclaim_orphans(self, lease_seconds: float, is_local_pid_alive: Callable[[int], bool] | None = None, *,
                        host: str | None = None, now: float | None = None) -> list[str]:
        """Put back in the queue every ``running`` run whose owner is gone: its owner scheduler ran on
        ``host`` (default this host) and ``is_local_pid_alive(owner_pid)`` is False (default: os.kill
        probe), or its heartbeat is older than ``lease_seconds`` (any host). They become ``queued`` with
        reason ``orphaned`` (attempts kept; the next trainer resumes from the checkpoint); an event
        ``reclaimed`` says why. Returns the reclaimed run ids. The previous owner's later writes are
        refused (NotOwner)."""
        alive = is_local_pid_alive or _local_pid_alive
        host = host or socket.gethostname()
        now = self._clock() if now is None else now
        reclaimed: list[str] = []
        with self._write() as conn:
            rows = conn.execute(text(
                "SELECT run_id, owner, owner_pid, host, heartbeat_at FROM runs WHERE state = 'running'")).all()
            for row in rows:
                why = None
                if row.host == host and row.owner_pid is not None and not alive(int(row.owner_pid)):
                    why = f"owner {row.owner} (pid {row.owner_pid} on {host}) is gone"
                elif row.heartbeat_at is None or now - row.heartbeat_at > lease_seconds:
                    age = "never" if row.heartbeat_at is None else f"{now - row.heartbeat_at:.0f} s ago"
                    why = f"owner {row.owner} on {row.host}: last heartbeat {age} (lease {lease_seconds:g} s)"
                if why is None:
                    continue
                res = conn.execute(text(
                    "UPDATE runs SET state = 'queued', reason = 'orphaned', message = :m, owner = NULL, "
                    "owner_pid = NULL, trainer_pid = NULL, slot = NULL "
                    "WHERE run_id = :r AND state = 'running' AND (owner = :o OR (owner IS NULL AND :o IS NULL))"),
                    {"m": why, "r": row.run_id, "o": row.owner})
                if res.rowcount == 1:
                    self._event(conn, row.run_id, "reclaimed", why, reason="orphaned", now=now)
                    reclaimed.append(row.run_id)
        return reclaimed

    # ---- user actions -----------------------------------------------------------------------------
    def cancel(self, run_id: str, message: str | None = None) -> bool:
        """Cancel a queued or running run (→ ``cancelled``, reason ``cancelled``). A running run's owner
        gets NotOwner on its next write and must stop the trainer. Returns False if the run had already
        ended (succeeded, failed, cancelled); NotFound if there is no such run (a unique prefix works)."""
        now = self._clock()
        with self._write() as conn:
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
        now = self._clock()
        with self._write() as conn:
            run_id = self._full_id(conn, run_id)
            state = conn.execute(text("SELECT state FROM runs WHERE run_id = :r"), {"r": run_id}).scalar()
            if state == "succeeded":
                raise StoreError(f"run {run_id} succeeded; only failed or cancelled runs can be retried")
            if state in ("queued", "running"):
                return False
            conn.execute(text(
                "UPDATE runs SET state = 'queued', reason = NULL, message = NULL, exit_code = NULL, attempts = 0, "
                "owner = NULL, owner_pid = NULL, trainer_pid = NULL, slot = NULL, finished_at = NULL "
                "WHERE run_id = :r"), {"r": run_id})
            self._event(conn, run_id, "retried", f"was {state}", now=now)
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

    # ---- lookups ----------------------------------------------------------------------------------
    def _full_id(self, conn: Connection, run_id: str) -> str:
        if conn.execute(text("SELECT 1 FROM runs WHERE run_id = :r"), {"r": run_id}).scalar():
            return run_id
        if len(run_id) >= 4:
            hits = [r for (r,) in conn.execute(
                text("SELECT run_id FROM runs WHERE run_id LIKE :p LIMIT 3"), {"p": run_id.replace("%", "") + "%"})]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise NotFound(f"run id prefix {run_id!r} is ambiguous ({', '.join(hits[:2])}, ...); give more of it")
        raise NotFound(f"no run {run_id!r}; `imacsr status --runs` lists them")

    def resolve_id(self, run_id: str) -> str:
        """The full run id of ``run_id`` or of a unique prefix of at least 4 characters; NotFound otherwise."""
        with self._read() as conn:
            return self._full_id(conn, run_id)

    def _record(self, conn: Connection, run_id: str) -> RunRecord:
        row = conn.execute(text(f"SELECT {', '.join(_RECORD_COLUMNS)} FROM runs WHERE run_id = :r"),
                           {"r": run_id}).mappings().first()
        if row is None:
            raise NotFound(f"no run {run_id!r}; `imacsr status --runs` lists them")
        return RunRecord(**row)

    def get(self, run_id: str) -> RunRecord:
        """The run's row (a unique prefix of ≥ 4 characters works); NotFound if there is none."""
        with self._read() as conn:
            return self._record(conn, self._full_id(conn, run_id))

    def grid_run_ids(self, grid: str) -> list[str]:
        """The run ids of a grid, in grid order ([] for an unknown grid)."""
        with self._read() as conn:
            return [r for (r,) in conn.execute(
                text("SELECT run_id FROM grid_runs WHERE grid = :g ORDER BY ord, run_id"), {"g": grid})]

    def grid(self, name: str) -> dict[str, Any]:
        """A grid's row as a dict (name, title, reproduces, path, toml, created_at, updated_at)."""
        with self._read() as conn:
            row = conn.execute(text("SELECT * FROM grids WHERE name = :n"), {"n": name}).mappings().first()
        if row is None:
            raise NotFound(f"no grid {name!r}; `imacsr status` lists them")
        return dict(row)

    def run(self, run_id: str, events: int = 20) -> dict[str, Any]:
        """One run for display: every runs column, ``spec`` (dict), ``grids`` ([{grid, cell, ord}]),
        ``last_val`` (dict), ``final`` (final metrics, name → value) and the last ``events`` events
        (oldest first). A unique prefix of ≥ 4 characters works; NotFound "no run 'x'; ..." otherwise."""
        with self._read() as conn:
            run_id = self._full_id(conn, run_id)
            row = dict(conn.execute(text("SELECT * FROM runs WHERE run_id = :r"), {"r": run_id}).mappings().one())
            row["spec"] = json.loads(row["spec_json"])
            row["points"] = json.loads(row["points"] or "[]")
            row["last_val"] = json.loads(row["last_val"]) if row["last_val"] else {}
            row["grids"] = [{"grid": g, "cell": json.loads(c), "ord": o} for g, c, o in conn.execute(
                text("SELECT grid, cell, ord FROM grid_runs WHERE run_id = :r ORDER BY grid"), {"r": run_id})]
            row["final"] = dict(conn.execute(text(
                "SELECT name, value FROM metrics WHERE run_id = :r AND split = 'final' ORDER BY name"), {"r": run_id}).all())
            evs = conn.execute(text(
                "SELECT id, time, kind, reason, detail, owner FROM events WHERE run_id = :r ORDER BY id DESC LIMIT :n"),
                {"r": run_id, "n": events}).mappings().all()
            row["events"] = [dict(e) for e in reversed(evs)]
        return row

    # ---- queries returning DataFrames -------------------------------------------------------------
    def grid_summary(self, *, records: bool = False) -> pd.DataFrame | list[dict[str, Any]]:
        """One row per grid: ``grid, title, reproduces, queued, running, succeeded, failed, cancelled,
        total, epochs_done, epochs_total, updated_at`` (aggregated in SQL), sorted by grid name.
        ``records=True`` returns a list of dicts instead and does not import pandas (fast CLI path)."""
        sql = ("SELECT g.name AS grid, g.title, g.reproduces, "
               + ", ".join(f"COALESCE(SUM(CASE WHEN r.state = '{s}' THEN 1 ELSE 0 END), 0) AS {s}" for s in STATES)
               + ", COUNT(r.run_id) AS total, COALESCE(SUM(r.epoch), 0) AS epochs_done, "
               "COALESCE(SUM(r.epochs), 0) AS epochs_total, g.updated_at "
               "FROM grids g LEFT JOIN grid_runs gr ON gr.grid = g.name LEFT JOIN runs r ON r.run_id = gr.run_id "
               "GROUP BY g.name, g.title, g.reproduces, g.updated_at ORDER BY g.name")
        with self._read() as conn:
            res = conn.execute(text(sql))
            columns = list(res.keys())
            rows = [dict(zip(columns, row)) for row in res.all()]
        if records:
            return rows
        import pandas as pd

        return pd.DataFrame.from_records(rows, columns=columns)

    _FRAME_COLUMNS = ("run_id", "model", "variant", "dataset", "method", "num_points", "position", "spacing",
                      "seed", "state", "reason", "message", "exit_code", "attempts", "epoch", "epochs", "owner",
                      "host", "slot", "trainer_pid", "heartbeat_at", "created_at", "started_at", "finished_at",
                      "run_dir", "last_val")

    def runs_frame(self, grid: str | None = None, states: Sequence[str] | None = None, *,
                   records: bool = False) -> pd.DataFrame | list[dict[str, Any]]:
        """One row per run (of ``grid``, in grid order; else all runs, oldest first), optionally only in
        ``states``. Columns: run_id, the spec columns (model, variant, dataset, method, num_points,
        position, spacing, seed), state, reason, message, exit_code, attempts, epoch, epochs, owner,
        host, slot, trainer_pid, heartbeat_at, created_at, started_at, finished_at, run_dir,
        heartbeat_age (seconds, running runs only, else None), ``val/<m>`` (last val metrics) and
        ``final/<m>`` (final metrics) for m in mIoU, mF1, mPrecision, mRecall (None when absent);
        with ``grid``: ``ord`` and ``cells`` (the run's list of label dicts in that grid); without:
        ``grids`` (comma-separated grid names). ``records=True`` returns a list of dicts (no pandas)."""
        cols = ", ".join(f"r.{c}" for c in self._FRAME_COLUMNS)
        params: dict[str, Any] = {}
        where = []
        if states:
            where.append("r.state IN (" + ", ".join(f":s{i}" for i in range(len(states))) + ")")
            params.update({f"s{i}": s for i, s in enumerate(states)})
        if grid is not None:
            sql = f"SELECT {cols}, g.ord, g.cell FROM grid_runs g JOIN runs r ON r.run_id = g.run_id WHERE g.grid = :g"
            params["g"] = grid
            sql += "".join(f" AND {w}" for w in where) + " ORDER BY g.ord, g.run_id"
            fsql = ("SELECT m.run_id, m.name, m.value FROM grid_runs g JOIN metrics m ON m.run_id = g.run_id "
                    "WHERE g.grid = :g AND m.split = 'final' AND m.name IN ('mIoU', 'mF1', 'mPrecision', 'mRecall')")
        else:
            sql = f"SELECT {cols} FROM runs r" + (" WHERE " + " AND ".join(where) if where else "")
            sql += " ORDER BY r.created_at, r.run_id"
            fsql = ("SELECT run_id, name, value FROM metrics WHERE split = 'final' "
                    "AND name IN ('mIoU', 'mF1', 'mPrecision', 'mRecall')")
        with self._read() as conn:
            res = conn.execute(text(sql), params)
            columns = list(res.keys())
            raw = res.all()
            final = conn.execute(text(fsql), {"g": grid} if grid is not None else {}).all()
            grids = None if grid is not None else conn.execute(
                text("SELECT run_id, grid FROM grid_runs ORDER BY grid")).all()
        fin: dict[str, dict[str, float]] = {}
        for run_id, name, value in final:
            fin.setdefault(run_id, {})[name] = value
        names: dict[str, list[str]] = {}
        for run_id, g in grids or []:
            names.setdefault(run_id, []).append(g)
        now = self._clock()
        out = []
        for row in raw:
            rec = dict(zip(columns, row))
            last_val = json.loads(rec.pop("last_val") or "{}")
            hb = rec["heartbeat_at"]
            rec["heartbeat_age"] = now - hb if rec["state"] == "running" and hb is not None else None
            for m in MAIN_METRICS:
                rec[f"val/{m}"] = last_val.get(m)
            f = fin.get(rec["run_id"], {})
            for m in MAIN_METRICS:
                rec[f"final/{m}"] = f.get(m)
            if grid is not None:
                rec["cells"] = json.loads(rec.pop("cell") or "[]")
            else:
                rec["grids"] = ",".join(names.get(rec["run_id"], []))
            out.append(rec)
        if records:
            return out
        import pandas as pd

        order = [c for c in columns if c not in ("last_val", "cell")] + ["heartbeat_age"]
        order += [f"val/{m}" for m in MAIN_METRICS] + [f"final/{m}" for m in MAIN_METRICS]
        order += ["cells"] if grid is not None else ["grids"]
        df = pd.DataFrame.from_records(out, columns=order)
        for c in ("exit_code", "trainer_pid", "spacing"):
            df[c] = df[c].astype("Int64")
        for c in ["heartbeat_at", "heartbeat_age", "started_at", "finished_at"] + order[-9:-1]:
            df[c] = df[c].astype(float)
        return df

    def cells_frame(self, grid: str | None = None) -> pd.DataFrame:
        """For reports: one row per (grid, run, cell) — a run filling two cells of a grid gives two rows.
        Columns: grid, run_id, ord, the spec columns, state, epoch, epochs, then one column per label key
        (e.g. table, figure, series, position_label...; missing labels are None). A label key that
        clashes with a column name is prefixed ``label.``."""
        import pandas as pd

        base = ["grid", "run_id", "ord", "model", "variant", "dataset", "method", "num_points", "position",
                "spacing", "seed", "state", "epoch", "epochs"]
        sql = ("SELECT g.grid, g.run_id, g.ord, r.model, r.variant, r.dataset, r.method, r.num_points, r.position, "
               "r.spacing, r.seed, r.state, r.epoch, r.epochs, g.cell FROM grid_runs g JOIN runs r ON r.run_id = g.run_id")
        params = {}
        if grid is not None:
            sql += " WHERE g.grid = :g"
            params["g"] = grid
        sql += " ORDER BY g.grid, g.ord, g.run_id"
        with self._read() as conn:
            rows = conn.execute(text(sql), params).all()
        records = []
        for row in rows:
            fixed = dict(zip(base, row[:-1]))
            for cell in json.loads(row[-1]) or [{}]:
                rec = dict(fixed)
                for k, v in cell.items():
                    rec[f"label.{k}" if k in fixed else k] = v
                records.append(rec)
        return pd.DataFrame.from_records(records, columns=None) if records else pd.DataFrame(columns=base)

    def metrics_frame(self, run_ids: Sequence[str] | None = None, split: str | None = None,
                      names: Sequence[str] | None = None, grid: str | None = None) -> pd.DataFrame:
        """Long-format metrics: columns ``run_id, epoch, split, name, value``, sorted by run_id, split,
        epoch, name. Filters (all optional, combined with AND): run ids, split (train | val | final),
        metric names, grid."""
        import pandas as pd

        clauses, params = [], {}
        if split is not None:
            clauses.append("m.split = :split")
            params["split"] = split
        if names:
            clauses.append("m.name IN (" + ", ".join(f":n{i}" for i in range(len(names))) + ")")
            params.update({f"n{i}": n for i, n in enumerate(names)})
        base = "SELECT m.run_id, m.epoch, m.split, m.name, m.value FROM metrics m"
        if grid is not None:
            base += " JOIN grid_runs g ON g.run_id = m.run_id"
            clauses.append("g.grid = :g")
            params["g"] = grid
        records: list[Any] = []
        with self._read() as conn:
            if run_ids is None:
                sql = base + (" WHERE " + " AND ".join(clauses) if clauses else "")
                records = conn.execute(text(sql), params).all()
            else:
                ids = list(dict.fromkeys(run_ids))
                for chunk in _chunks(ids):
                    p = dict(params, **{f"r{i}": r for i, r in enumerate(chunk)})
                    cl = clauses + ["m.run_id IN (" + ", ".join(f":r{i}" for i in range(len(chunk))) + ")"]
                    records.extend(conn.execute(text(base + " WHERE " + " AND ".join(cl)), p).all())
        df = pd.DataFrame.from_records(records, columns=["run_id", "epoch", "split", "name", "value"])
        df["value"] = df["value"].astype(float)
        return df.sort_values(["run_id", "split", "epoch", "name"], kind="stable").reset_index(drop=True)

    def run_events(self, run_id: str) -> pd.DataFrame:
        """Every event of a run, oldest first: ``id, time, kind, reason, detail, owner``. NotFound if missing."""
        import pandas as pd

        with self._read() as conn:
            run_id = self._full_id(conn, run_id)
            res = conn.execute(text("SELECT id, time, kind, reason, detail, owner FROM events WHERE run_id = :r "
                                    "ORDER BY id"), {"r": run_id})
            return pd.DataFrame.from_records(res.all(), columns=list(res.keys()))

    def report_rows(self, grid: str | None = None, names: Sequence[str] = ()) -> tuple[
            list[dict[str, Any]], dict[str, dict[str, float]]]:
        """What a report reads, in one read snapshot: the runs of ``grid`` (every run without one) in
        grid order, each with ``spec`` (the spec JSON text) and ``cells`` ({grid: [labels, ...]}), and
        their final metrics named in ``names`` ({run_id: {name: value}}, the latest epoch winning).
        NotFound for an unknown grid."""
        from imacsr_cli.store.models import Grid, Metric

        cols = (Run.run_id, Run.spec_json, Run.model, Run.variant, Run.dataset, Run.method, Run.num_points,
                Run.seed, Run.state, Run.reason, Run.message, Run.created_at)
        with self._read() as conn:
            if grid is not None:
                if conn.execute(select(Grid.name).where(Grid.name == grid)).first() is None:
                    known = [g for (g,) in conn.execute(select(Grid.name).order_by(Grid.name))]
                    raise NotFound(f"no grid {grid!r} in {self.where}; grids: {', '.join(known) or 'none'}")
                q = (select(*cols, GridRun.ord).join(GridRun, GridRun.run_id == Run.run_id)
                     .where(GridRun.grid == grid).order_by(GridRun.ord, Run.run_id))
                links = select(GridRun.run_id, GridRun.grid, GridRun.cell).where(GridRun.grid == grid)
                mq = (select(Metric.run_id, Metric.name, Metric.value, Metric.epoch)
                      .join(GridRun, GridRun.run_id == Metric.run_id).where(GridRun.grid == grid))
            else:
                q = select(*cols).order_by(Run.created_at, Run.run_id)
                links = select(GridRun.run_id, GridRun.grid, GridRun.cell)
                mq = select(Metric.run_id, Metric.name, Metric.value, Metric.epoch)
            mq = mq.where(Metric.split == "final", Metric.name.in_(list(names))).order_by(Metric.epoch)
            runs = [dict(r._mapping) for r in conn.execute(q)]
            cells: dict[str, dict[str, list]] = {}
            for run_id, g, cell in conn.execute(links):
                cells.setdefault(run_id, {})[g] = _cells(json.loads(cell) if cell else [])
            metrics: dict[str, dict[str, float]] = {}
            for run_id, name, value, _epoch in conn.execute(mq):  # ordered by epoch: a later finish wins
                metrics.setdefault(run_id, {})[name] = float("nan") if value is None else float(value)
        for r in runs:
            r["spec"] = r.pop("spec_json")
            r["cells"] = cells.get(r["run_id"], {})
        return runs, metrics


def _after_fork(ref: weakref.ref) -> None:
    store = ref()
    if store is not None:
        store._w.dispose(close=False)
        if store._r is not store._w:
            store._r.dispose(close=False)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sqlite_engine(url: str, *, immediate: bool, memory: bool) -> Engine:
    """A pysqlite engine with driver-level autocommit, so that SQLAlchemy's "begin" event decides how a
    transaction starts (the SQLAlchemy pysqlite recipe): BEGIN IMMEDIATE for writes, BEGIN for reads."""
    kwargs: dict[str, Any] = {"connect_args": {"isolation_level": None, "timeout": BUSY_TIMEOUT_S,
                                               "check_same_thread": False}}
    if memory:
        from sqlalchemy.pool import StaticPool

        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not memory:
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
