"""How the Store talks to its database: URL defaults, the SQLAlchemy engines, transactions, fork safety.

SQLite (the default) is tuned for several processes on one file:

- WAL journal, ``PRAGMA busy_timeout`` = 30 s on every connection.
- Two engines on the same file: writes go through an engine whose transactions start with
  ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers queue on the busy timeout
  instead of failing with "database is locked" when a read lock is upgraded); reads go through an
  engine with plain deferred ``BEGIN``, so readers see a consistent snapshot and never block the writer
  nor wait for it (WAL).

PostgreSQL (``postgresql+psycopg://``, the ``postgres`` extra) is for many schedulers on many hosts:

- one pooled engine with ``pool_pre_ping`` (a connection that died with a server restart is replaced,
  not handed out);
- ``retrying``: a public Store method whose connection is lost or whose server is restarting is run
  again, with backoff, for up to ``Connected.retry_seconds`` (the scheduler sets its lease), so that a
  restart or failover shorter than the lease neither stops a scheduler nor kills its trainers;
- ``serialize``: a transaction-scoped advisory lock for what must not run twice at once (schema
  creation, enqueue); SQLite's ``BEGIN IMMEDIATE`` already serialises every write;
- ``now``: times that other hosts compare (heartbeats, leases) come from the database's clock.

``Connected`` is the base of ``Store``: the URL, the two engines, the clock and the ``_read`` /
``_write`` transactions every query and write goes through.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from imacsr_cli.errors import NotFound, StoreDiskFull, StoreError

DEFAULT_URL = "sqlite:///results/imacsr.db"
BUSY_TIMEOUT_S = 30.0
_CHUNK = 500  # ids per IN (...) clause
RETRY_SECONDS = 30.0  # how long a method retries a lost PostgreSQL connection by default
CONNECT_TIMEOUT_S = 10  # libpq connect_timeout: a dead host is a retry, not a hang
_Self = TypeVar("_Self", bound="Connected")
_F = TypeVar("_F", bound=Callable[..., Any])

#: Drivers that come with an extra: the one line a user gets when the driver is missing.
_EXTRAS = {"psycopg": "postgres", "psycopg2": "postgres", "pymysql": "mysql"}

# SQLSTATEs worth a retry: serialization failure, deadlock, admin/crash shutdown, cannot connect now,
# and the connection-exception class.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"}

# Advisory-lock keys (PostgreSQL): one per kind of serialised work.
LOCK_SCHEMA = 0x696D6163  # "imac"
LOCK_ENQUEUE = 0x696D6164


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
        w = r = server_engine(url)
    return w, r


def server_engine(url: str) -> Engine:
    """An engine for a database server (PostgreSQL): pre-pinged pooled connections, a connect timeout.
    A missing driver is one line that names the extra to install."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "pool_recycle": 1800}
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "imacsr"}
    try:
        return create_engine(url, **kwargs)
    except (ImportError, NoSuchModuleError) as exc:
        driver = parsed.get_driver_name()
        missing = getattr(exc, "name", None) or driver
        extra = _EXTRAS.get(driver) or _EXTRAS.get(str(missing).split(".")[0])
        hint = f"pip install 'imacsr[{extra}]'" if extra else f"install the {driver} driver"
        raise StoreError(f"--db {shown_url(url)}: the {driver} driver is not "
                         f"installed ({hint})") from None
    except ArgumentError as exc:
        raise StoreError(f"--db {url!r} is not a database URL: {exc}") from None


def shown_url(url: str) -> str:
    """``url`` as a user may see it: the password hidden, nothing else changed."""
    from urllib.parse import unquote

    return unquote(make_url(url).render_as_string(hide_password=True))


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is worth retrying: the connection was lost, the server is restarting or
    not reachable yet, or the transaction lost a serialization race. SQLite's "database is locked" is
    not (its 30 s busy timeout already waited)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _TRANSIENT_SQLSTATES:
        return True
    module = type(orig).__module__ or ""
    # psycopg raises a bare OperationalError (no SQLSTATE) when it cannot reach the server at all.
    return module.startswith("psycopg") and isinstance(exc, OperationalError) and code is None


_depth = threading.local()


def retrying(method: _F) -> _F:
    """Run a Store method again, with backoff, while its database errors are transient (see
    ``is_transient``), for up to ``self.retry_seconds``. Only the outermost call retries (a method that
    calls another retries once, as a whole). After that a one-line StoreError."""

    @functools.wraps(method)
    def wrapper(self: Connected, *args: Any, **kwargs: Any) -> Any:
        if getattr(_depth, "n", 0):
            return method(self, *args, **kwargs)
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.1
        while True:
            _depth.n = 1
            try:
                return method(self, *args, **kwargs)
            except DBAPIError as exc:
                if not is_transient(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    raise StoreError(f"{self.where}: {_one_line(exc.orig)} (still failing after "
                                     f"{self.retry_seconds:g} s of retries)") from None
                self.retries += 1
            finally:
                _depth.n = 0
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    return wrapper  # type: ignore[return-value]


def retrying_methods(cls: type) -> type:
    """Class decorator: ``retrying`` on every public function defined in ``cls`` itself."""
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and callable(value) and not isinstance(value, (classmethod, staticmethod, type)):
            setattr(cls, name, retrying(value))
    return cls


def _one_line(orig: BaseException | None) -> str:
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return lines[0] if lines else type(orig).__name__


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
        self._db_clock = clock is time.time  # an injected clock (tests) wins over the server's
        self.is_sqlite = write_engine.dialect.name == "sqlite"
        self.retry_seconds = RETRY_SECONDS
        self.retries = 0  # transient errors retried so far (tests and the benchmark read it)
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
        return shown_url(self.url)

    def _now(self, conn: Connection) -> float:
        """Unix seconds by the database's clock (PostgreSQL), so that hosts whose clocks differ agree on
        lease ages; this host's clock on SQLite (one machine) or when a clock was injected."""
        if self._db_clock and not self.is_sqlite:
            return float(conn.execute(text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one())
        return self._clock()

    def _serialize(self, conn: Connection, key: int) -> None:
        """Hold advisory lock ``key`` until the transaction ends (PostgreSQL); SQLite's BEGIN IMMEDIATE
        already holds the database's write lock."""
        if not self.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite); commits on success, rolls back on error.
        A transient error on a server propagates (``retrying`` runs the whole method again); any other
        operational error is a one-line StoreError."""
        try:
            with self._w.begin() as conn:
                yield conn
        except OperationalError as exc:
            if is_transient(exc):
                raise
            raise self.failure(exc) from None

    def failure(self, exc: DBAPIError, what: str = "") -> StoreError:
        """A StoreError for a failed database operation; on a full disk it says so (SQLite reports a
        full disk as "database or disk is full", or as "disk I/O error" when it cannot grow -shm)."""
        free = _free_bytes(self.where) if self.url.startswith("sqlite") and self.where != ":memory:" else None
        if "disk is full" in str(exc.orig) or (free is not None and free < DISK_FULL_BYTES):
            room = f"{free} bytes free" if free is not None else "no space left"
            return StoreDiskFull(f"{self.where}: the disk is full ({room} on its file system; SQLite: "
                                 f"{_one_line(exc.orig)}): free space and try again; what is stored is intact",
                                 self.where, f"{room}; SQLite: {_one_line(exc.orig)}")
        return StoreError(f"{self.where}{what}: {_one_line(exc.orig)}")

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
