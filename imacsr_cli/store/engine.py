"""How the Store talks to its database: URL defaults, the SQLAlchemy engines, transactions, fork safety.

SQLite (the default) is tuned for several processes on one file:

- WAL journal, ``PRAGMA busy_timeout`` = 30 s on every connection.
- Two engines on the same file: writes go through an engine whose transactions start with
  ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers queue on the busy timeout
  instead of failing with "database is locked" when a read lock is upgraded); reads go through an
  engine with plain deferred ``BEGIN``, so readers see a consistent snapshot and never block the writer
  nor wait for it (WAL).

``Connected`` is the base of ``Store``: the URL, the two engines, the clock and the ``_read`` /
``_write`` transactions every query and write goes through.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from imacsr_cli.errors import NotFound, StoreError

DEFAULT_URL = "sqlite:///results/imacsr.db"
BUSY_TIMEOUT_S = 30.0
_CHUNK = 500  # ids per IN (...) clause
_Self = TypeVar("_Self", bound="Connected")


def default_url() -> str:
    """The database URL when none is given: env ``IMACSR_DB``, else ``sqlite:///results/imacsr.db``."""
    return os.environ.get("IMACSR_DB") or DEFAULT_URL


def normalize_url(url: str | None) -> str:
    """``None`` → ``default_url()``; a plain path (no ``://``) → ``sqlite:///<absolute path>``."""
    url = url or default_url()
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def open_engines(url: str, *, create: bool) -> tuple[Engine, Engine]:
    """The write and the read engine of a normalised ``url`` (one engine for an in-memory or non-SQLite
    database). The parent folder of a SQLite file is created; with ``create=False`` a missing SQLite
    file is ``NotFound`` (for read-only commands)."""
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
        w = sqlite_engine(url, immediate=True, memory=memory)
        r = w if memory else sqlite_engine(url, immediate=False, memory=False)
    else:
        w = r = create_engine(url, future=True)
    return w, r


def sqlite_engine(url: str, *, immediate: bool, memory: bool) -> Engine:
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
            if not memory and immediate:  # the writer sets it (it persists in the file); a reader writes nothing
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def chunks(items: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``n`` (bound parameters per ``IN (...)`` clause)."""
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Connected:
    """The base of ``Store``: ``url``, a write and a read engine, a clock, and the transactions.

    Safe to use from several threads; in a forked child the parent's pooled connections are dropped
    (never reused) and the child opens its own.
    """

    def __init__(self, url: str, write_engine: Engine, read_engine: Engine, clock: Callable[[], float] = time.time):
        self.url = url
        self._w = write_engine
        self._r = read_engine
        self._clock = clock
        # A forked child must not reuse the parent's pooled connections (SQLAlchemy's pooling docs).
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    def close(self) -> None:
        """Dispose of the connection pools."""
        self._w.dispose()
        if self._r is not self._w:
            self._r.dispose()

    def __enter__(self: _Self) -> _Self:
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

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite); commits on success, rolls back on error."""
        try:
            with self._w.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise self.failure(exc) from None

    def failure(self, exc: DBAPIError, what: str = "") -> StoreError:
        """A StoreError for a failed database operation; on a full disk it says so (SQLite reports a
        full disk as "database or disk is full", or as "disk I/O error" when it cannot grow -shm)."""
        free = _free_bytes(self.where) if self.url.startswith("sqlite") and self.where != ":memory:" else None
        if "disk is full" in str(exc.orig) or (free is not None and free < DISK_FULL_BYTES):
            room = f"{free} bytes free" if free is not None else "no space left"
            return StoreError(f"{self.where}: the disk is full ({room} on its file system; SQLite: {exc.orig}): "
                              "free space and try again; what is stored is intact")
        return StoreError(f"{self.where}{what}: {exc.orig}")

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction (deferred BEGIN: a consistent snapshot that never blocks the writer)."""
        with self._r.connect() as conn:
            try:
                yield conn
            finally:
                conn.rollback()


DISK_FULL_BYTES = 1 << 20  # less than this free next to a SQLite file: a failure there is the full disk


def _free_bytes(path: str) -> int | None:
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)) or ".")
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _after_fork(ref: weakref.ref) -> None:
    db = ref()
    if db is not None:
        db._w.dispose(close=False)
        if db._r is not db._w:
            db._r.dispose(close=False)
