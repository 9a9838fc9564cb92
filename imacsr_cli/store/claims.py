"""The scheduler's side of the Store: claim a run, write about it while owning it, reclaim orphans.

- ``claim`` selects and flips one queued run in one transaction, with ``UPDATE ... WHERE state =
  'queued'`` and a rowcount check: two schedulers on one database never get the same run. On SQLite the
  transaction is ``BEGIN IMMEDIATE`` (claims queue on the write lock); on PostgreSQL the candidate is
  selected ``FOR UPDATE SKIP LOCKED``, so concurrent claimers each take a different row instead of all
  waiting for the first one and coming back empty.
- Every write that concerns a claimed run (``mark_started``, ``heartbeat``, ``record_epoch``,
  ``finish``, ``requeue``) names its ``owner`` and is refused with ``NotOwner`` unless the run is
  ``running`` and owned by that owner: a scheduler whose run was reclaimed (or cancelled) learns it on
  its next write and must stop that run's trainer.
- A running run whose owner is gone (its scheduler's pid is dead, probed only from the same machine and
  PID namespace, or its heartbeat is older than the lease) is an orphan: ``orphans`` lists them,
  ``reclaim_orphans`` puts them back in the queue. One predicate (``_orphaned_because``) decides for
  both; the reclaim is a compare-and-set on the heartbeat read, so a heartbeat that lands first wins.
- Every time compared across hosts (heartbeats, leases) is the database's clock (``Connected._now``).
- A scheduler registers itself (``register_scheduler``): a uuid, its host, pid and namespace, and a lease
  row it renews (``scheduler_heartbeat``); the uuid is the ``owner`` of the runs it claims.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, select, text

from imacsr_cli import metric_names as mn
from imacsr_cli.errors import NotFound, StoreError
from imacsr_cli.rundir import Result
from imacsr_cli.rundir.codes import REASONS
from imacsr_cli.store.engine import chunks, retrying_methods
from imacsr_cli.store.models import Event, Run
from imacsr_cli.store.queries import Queries, RunRecord
from imacsr_cli.units import metric_text

# The running runs and what the orphan predicate reads of them.
_RUNNING = "SELECT run_id, owner, owner_pid, owner_ns, host, heartbeat_at FROM runs WHERE state = 'running'"

_NS: str | None = None


def local_ns() -> str:
    """This process's machine and PID namespace, ``"<machine-id>:<pid-ns inode>"``: a pid means the same
    process only between two processes with the same value. Two containers with one hostname differ
    (another PID namespace, or another machine id); so do two hosts."""
    global _NS
    if _NS is None:
        machine = ""
        for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
            try:
                machine = Path(path).read_text().strip()
            except OSError:
                continue
            if machine:
                break
        machine = machine or f"host-{socket.gethostname()}"
        try:
            ns = str(os.stat("/proc/self/ns/pid").st_ino)
        except OSError:  # no procfs (macOS): the hostname and boot are all we know
            ns = "noproc"
        _NS = f"{machine}:{ns}"
    return _NS


def _reset_ns_after_fork() -> None:  # a child of `unshare --pid --fork` or a fork is measured again
    global _NS
    _NS = None


os.register_at_fork(after_in_child=_reset_ns_after_fork)


class NotOwner(StoreError):
    """A write about a run that the writer does not own (any more): it was reclaimed, cancelled or
    finished. The scheduler that gets this must stop the run's trainer and forget the run."""


def as_result(final: Result | Mapping[str, Any]) -> Result:
    """A Result as is; a mapping in the result.json layout is validated by the run directory's one
    reader (rundir.Result.from_dict): the store parses no trainer file itself."""
    return final if isinstance(final, Result) else Result.from_dict(final, "final result")


def final_metrics(result: Result | Mapping[str, Any]) -> dict[str, float]:
    """The final metric rows ``finish`` stores (name → value): see ``rundir.Result.final_metrics``."""
    return as_result(result).final_metrics()


def history_metrics(run_id: str, result: Result) -> list[dict[str, Any]]:
    """Per-epoch metric rows (splits ``train`` and ``val``) from result.json's ``history``: the trainer's
    own record of every epoch, so the database's curves do not depend on events.jsonl having survived."""
    rows: list[dict[str, Any]] = []
    for record in result.history:
        if not isinstance(record, Mapping) or not isinstance(record.get("epoch"), int):
            continue
        for split in ("train", "val"):
            values = record.get(split) or {}
            if isinstance(values, Mapping):
                rows += [{"run_id": run_id, "epoch": record["epoch"], "split": split, "name": str(name),
                          "value": _num(value)} for name, value in values.items()]
    return rows


def _local_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@retrying_methods
class Claims(Queries):
    """Claim, the owner-checked writes and orphan reclaim; the base of ``Store``."""

    def _event(self, conn: Connection, run_id: str, kind: str, detail: str = "", reason: str | None = None,
               owner: str | None = None, now: float | None = None) -> None:
        conn.execute(
            Event.__table__.insert(),
            {"run_id": run_id, "time": now if now is not None else self._clock(), "kind": kind,
             "detail": detail, "reason": reason, "owner": owner},
        )

    # ---- claim and the owner's writes -------------------------------------------------------------
    def claim(self, owner: str, *, host: str | None = None, pid: int | None = None, grid: str | None = None,
              run_ids: Sequence[str] | None = None, fallback: bool = False, ns: str | None = None) -> RunRecord | None:
        """Atomically take one queued run: it becomes ``running``, owned by ``owner``; ``attempts`` + 1.

        Candidates: the queued runs of ``grid`` in grid order, restricted to ``run_ids`` if given (then in
        the order of ``run_ids`` when no grid is given); with neither, every queued run, oldest first.
        With ``fallback=True`` and no candidate in ``grid``/``run_ids``, any queued run is taken.
        ``host`` (default this host), ``pid`` (default this process) and ``ns`` (default ``local_ns()``
        when ``host`` is not given; else unknown) identify the owner scheduler for ``reclaim_orphans``:
        its pid is probed only from the same ``ns``. Returns the claimed run, or None when nothing is
        queued (on PostgreSQL: nothing that another claimer is not taking at this very moment).
        """
        if ns is None and host is None:
            ns = local_ns()
        host = host or socket.gethostname()
        pid = os.getpid() if pid is None else pid
        with self._write() as conn:
            now = self._now(conn)
            run_id = self._pick(conn, grid, run_ids)
            if run_id is None and fallback and (grid is not None or run_ids is not None):
                run_id = self._pick(conn, None, None)
            if run_id is None:
                return None
            res = conn.execute(
                text("UPDATE runs SET state = 'running', owner = :o, owner_pid = :p, owner_ns = :ns, host = :h, "
                     "attempts = attempts + 1, heartbeat_at = :t, reason = NULL, message = NULL, exit_code = NULL, "
                     "trainer_pid = NULL, slot = NULL, handle = NULL, finished_at = NULL "
                     "WHERE run_id = :r AND state = 'queued'"),
                {"o": owner, "p": pid, "ns": ns, "h": host, "t": now, "r": run_id},
            )
            if res.rowcount != 1:  # cannot happen (write lock / row lock held); never hand out a run twice
                return None
            self._event(conn, run_id, "claimed", f"by {owner} on {host} (pid {pid})", owner=owner, now=now)
            return self._record(conn, run_id)

    def _pick(self, conn: Connection, grid: str | None, run_ids: Sequence[str] | None) -> str | None:
        if not self.is_sqlite:
            return self._pick_skip_locked(conn, grid, run_ids)
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
            for chunk in chunks(ids):
                queued.update(conn.execute(
                    select(Run.run_id).where(Run.run_id.in_(chunk), Run.state == "queued")).scalars())
            return next((r for r in ids if r in queued), None)
        return conn.execute(
            text("SELECT run_id FROM runs WHERE state = 'queued' ORDER BY created_at, run_id LIMIT 1")).scalar()

    @staticmethod
    def _pick_skip_locked(conn: Connection, grid: str | None, run_ids: Sequence[str] | None) -> str | None:
        """PostgreSQL: the first candidate row that no concurrent claim has locked, locked for us until
        commit (``FOR UPDATE SKIP LOCKED``). Same order as on SQLite."""
        params: dict[str, Any] = {}
        where = "r.state = 'queued'"
        if run_ids is not None:
            where += " AND r.run_id = ANY(:ids)"
            params["ids"] = list(run_ids)
        if grid is not None:
            params["g"] = grid
            sql = (f"SELECT r.run_id FROM runs r JOIN grid_runs g ON g.run_id = r.run_id AND g.grid = :g "
                   f"WHERE {where} ORDER BY g.ord, g.run_id LIMIT 1 FOR UPDATE OF r SKIP LOCKED")
        elif run_ids is not None:
            sql = (f"SELECT r.run_id FROM runs r JOIN unnest(CAST(:ids AS VARCHAR[])) WITH ORDINALITY AS w(id, k) "
                   f"ON w.id = r.run_id WHERE {where} ORDER BY w.k LIMIT 1 FOR UPDATE OF r SKIP LOCKED")
        else:
            sql = (f"SELECT r.run_id FROM runs r WHERE {where} ORDER BY r.created_at, r.run_id "
                   f"LIMIT 1 FOR UPDATE OF r SKIP LOCKED")
        return conn.execute(text(sql), params).scalar()

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
                     run_dir: str | Path | None, handle: str | None = None) -> None:
        """The owner launched the run's trainer: record its pid (a local trainer) or ``handle`` (e.g.
        ``slurm:1234``), slot (e.g. "cuda:0", "cpu:1"), RUN_DIR and ``started_at``; refreshes the
        heartbeat. NotOwner if ``owner`` does not own the run."""
        with self._write() as conn:
            now = self._now(conn)
            self._owned_update(conn, run_id, owner,
                               "trainer_pid = :pid, slot = :slot, run_dir = :dir, started_at = :t, heartbeat_at = :t, "
                               "handle = :handle",
                               {"pid": trainer_pid, "slot": slot, "dir": str(run_dir) if run_dir else None, "t": now,
                                "handle": handle})
            where = handle or f"pid {trainer_pid}"
            self._event(conn, run_id, "started", f"{where} on {slot}", owner=owner, now=now)

    def heartbeat(self, run_id: str, owner: str, epoch: int | None = None) -> None:
        """The run is alive: ``heartbeat_at`` = now (and ``epoch`` = last finished epoch, if given).
        NotOwner if ``owner`` does not own the run any more (reclaimed or cancelled: stop the trainer)."""
        with self._write() as conn:
            if epoch is None:
                self._owned_update(conn, run_id, owner, "heartbeat_at = :t", {"t": self._now(conn)})
            else:
                self._owned_update(conn, run_id, owner, "heartbeat_at = :t, epoch = :e",
                                   {"t": self._now(conn), "e": int(epoch)})

    def record_epoch(self, run_id: str, owner: str, epoch: int, train: Mapping[str, float] | None = None,
                     val: Mapping[str, float] | None = None, *, epochs: int | None = None) -> None:
        """Ingest one ``epoch`` event: metric rows (split ``train`` and ``val``), ``runs.epoch`` = epoch,
        the heartbeat, the last val metrics, and an ``epoch`` event. Idempotent: re-ingesting the same
        epoch upserts the same rows and adds no second event. ``epochs`` updates the planned total.
        NotOwner if ``owner`` does not own the run."""
        rows = [{"run_id": run_id, "epoch": int(epoch), "split": split, "name": name, "value": _num(value)}
                for split, values in (("train", train or {}), ("val", val or {})) for name, value in values.items()]
        with self._write() as conn:
            now = self._now(conn)
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
                if val and val.get(mn.MIOU) is not None:
                    detail += " val " + metric_text(mn.MIOU, val[mn.MIOU])
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
               exit_code: int | None = None, final: Result | Mapping[str, Any] | None = None) -> None:
        """End the owner's run: ``state`` is ``succeeded`` or ``failed`` (with a ``reason`` from
        rundir.codes.REASONS and a one-line ``message``). ``final`` is the run's result (rundir.Result,
        or a dict in the result.json layout, validated the same way): its metrics are stored with split
        ``final`` at epoch = its ``epochs`` (see ``Result.final_metrics``) and its code version in
        ``runs.code``; its per-epoch ``history`` fills the ``train``/``val`` rows again
        (``history_metrics``). NotOwner if ``owner`` does not own the run (it was reclaimed or cancelled
        meanwhile: nothing is written)."""
        if state not in ("succeeded", "failed"):
            raise ValueError(f"finish: state must be 'succeeded' or 'failed', got {state!r}")
        if reason is not None and reason not in REASONS:
            raise ValueError(f"finish: unknown reason {reason!r}; expected one of {', '.join(REASONS)}")
        result = as_result(final) if final is not None else None
        with self._write() as conn:
            now = self._now(conn)
            sets = ("state = :s, reason = :reason, message = :m, exit_code = :x, finished_at = :t, heartbeat_at = :t")
            params: dict[str, Any] = {"s": state, "reason": reason, "m": message, "x": exit_code, "t": now}
            if result is not None and result.epochs is not None:
                sets += ", epoch = :e"
                params["e"] = result.epochs
            if result is not None and result.code is not None:
                sets += ", code = :code"
                params["code"] = json.dumps(result.code.to_dict())
            self._owned_update(conn, run_id, owner, sets, params)
            if result is not None:
                epoch = result.epochs
                if epoch is None:
                    epoch = conn.execute(text("SELECT epoch FROM runs WHERE run_id = :r"), {"r": run_id}).scalar()
                self._upsert_metrics(conn, history_metrics(run_id, result) + [
                    {"run_id": run_id, "epoch": int(epoch or 0), "split": "final", "name": k, "value": v}
                    for k, v in result.final_metrics().items()
                ])
            detail = message or (f"exit code {exit_code}" if exit_code is not None else "")
            self._event(conn, run_id, state, detail, reason=reason, owner=owner, now=now)

    def requeue(self, run_id: str, owner: str, reason: str, message: str | None = None, *,
                retry: bool = False) -> None:
        """The owner gives its run back to the queue (e.g. interrupted, or a retry after a crash):
        ``running`` → ``queued`` with ``reason``; owner cleared, ``attempts`` kept. ``retry=True``: this
        spends one of the --retries budget (``runs.retries`` + 1). NotOwner otherwise."""
        if reason not in REASONS:
            raise ValueError(f"requeue: unknown reason {reason!r}; expected one of {', '.join(REASONS)}")
        with self._write() as conn:
            now = self._now(conn)
            self._owned_update(conn, run_id, owner,
                               "state = 'queued', reason = :reason, message = :m, owner = NULL, owner_pid = NULL, "
                               "owner_ns = NULL, trainer_pid = NULL, slot = NULL, handle = NULL"
                               + (", retries = retries + 1" if retry else ""), {"reason": reason, "m": message})
            self._event(conn, run_id, "requeued", message or "", reason=reason, owner=owner, now=now)

    # ---- orphans ----------------------------------------------------------------------------------
    def reclaim_orphans(self, lease_seconds: float, is_local_pid_alive: Callable[[int], bool] | None = None, *,
                        host: str | None = None, now: float | None = None, ns: str | None = None) -> list[str]:
        """Put back in the queue every ``running`` run whose owner is gone: its owner scheduler ran on
        ``host`` (default this host) in PID namespace ``ns`` (default ``local_ns()``) and
        ``is_local_pid_alive(owner_pid)`` is False (default: os.kill probe), or its heartbeat is older than
        ``lease_seconds`` by the database's clock (any host). They become ``queued`` with reason
        ``orphaned`` (attempts kept; the next trainer resumes from the checkpoint); an event ``reclaimed``
        says why. Returns the reclaimed run ids. The previous owner's later writes are refused (NotOwner).

        Compare-and-set: a run is taken back only if its owner and heartbeat are still the ones read, so
        a heartbeat committed in between wins and the run stays with its owner."""
        alive = is_local_pid_alive or _local_pid_alive
        host = host or socket.gethostname()
        ns = ns or local_ns()
        reclaimed: list[str] = []
        with self._write() as conn:
            now = self._now(conn) if now is None else now
            rows = conn.execute(text(_RUNNING)).all()
            for row in rows:
                why = _orphaned_because(row, lease_seconds, alive, host, ns, now)
                if why is None:
                    continue
                params: dict[str, Any] = {"m": why, "r": row.run_id}
                same = []
                for col, value in (("owner", row.owner), ("heartbeat_at", row.heartbeat_at)):
                    if value is None:
                        same.append(f"{col} IS NULL")
                    else:
                        same.append(f"{col} = :{col}")
                        params[col] = value
                res = conn.execute(text(
                    "UPDATE runs SET state = 'queued', reason = 'orphaned', message = :m, owner = NULL, "
                    "owner_pid = NULL, owner_ns = NULL, trainer_pid = NULL, slot = NULL "
                    f"WHERE run_id = :r AND state = 'running' AND {' AND '.join(same)}"), params)
                if res.rowcount == 1:
                    self._event(conn, row.run_id, "reclaimed", why, reason="orphaned", now=now)
                    reclaimed.append(row.run_id)
        return reclaimed

    def orphans(self, lease_seconds: float, is_local_pid_alive: Callable[[int], bool] | None = None, *,
                host: str | None = None, now: float | None = None, ns: str | None = None) -> list[str]:
        """The ids of the ``running`` runs that ``reclaim_orphans`` with the same arguments would put back
        in the queue, without changing anything (for a plan that tells "running elsewhere" from
        "orphaned")."""
        alive = is_local_pid_alive or _local_pid_alive
        host = host or socket.gethostname()
        ns = ns or local_ns()
        with self._read() as conn:
            now = self._now(conn) if now is None else now
            rows = conn.execute(text(_RUNNING)).all()
        return [row.run_id for row in rows
                if _orphaned_because(row, lease_seconds, alive, host, ns, now) is not None]

    def adopt(self, run_id: str, owner: str, previous: str | None, *, host: str | None = None,
              pid: int | None = None, ns: str | None = None) -> bool:
        """Take over a running run from its gone owner ``previous`` without restarting it (its Slurm job
        still runs): compare-and-set on the owner, so only one scheduler adopts it. An ``adopted`` event."""
        with self._write() as conn:
            now = self._now(conn)
            params: dict[str, Any] = {"o": owner, "p": os.getpid() if pid is None else pid, "ns": ns or local_ns(),
                                      "h": host or socket.gethostname(), "t": now, "r": run_id}
            same = "owner IS NULL" if previous is None else "owner = :prev"
            if previous is not None:
                params["prev"] = previous
            res = conn.execute(text(
                "UPDATE runs SET owner = :o, owner_pid = :p, owner_ns = :ns, host = :h, heartbeat_at = :t "
                f"WHERE run_id = :r AND state = 'running' AND {same}"), params)
            if res.rowcount != 1:
                return False
            self._event(conn, run_id, "adopted", f"by {owner} on {params['h']} from {previous}", owner=owner, now=now)
            return True

    # ---- schedulers -------------------------------------------------------------------------------
    def register_scheduler(self, scheduler_id: str, *, host: str | None = None, pid: int | None = None,
                           ns: str | None = None, executor: str = "local") -> None:
        """A scheduler starts: its uuid, host, pid and PID namespace, with a fresh lease."""
        with self._write() as conn:
            now = self._now(conn)
            conn.execute(text(
                "INSERT INTO schedulers (id, host, pid, ns, executor, started_at, heartbeat_at) "
                "VALUES (:id, :h, :p, :ns, :x, :t, :t)"),
                {"id": scheduler_id, "h": host or socket.gethostname(), "p": os.getpid() if pid is None else pid,
                 "ns": ns or local_ns(), "x": executor, "t": now})

    def scheduler_heartbeat(self, scheduler_id: str, *, ended: bool = False) -> None:
        """Renew a scheduler's lease (``ended=True``: it stops now)."""
        with self._write() as conn:
            now = self._now(conn)
            conn.execute(text("UPDATE schedulers SET heartbeat_at = :t" + (", ended_at = :t" if ended else "")
                              + " WHERE id = :id"), {"t": now, "id": scheduler_id})

    def schedulers(self, lease_seconds: float) -> list[dict[str, Any]]:
        """The schedulers whose lease is current (``heartbeat_at`` within ``lease_seconds``), oldest first."""
        with self._read() as conn:
            now = self._now(conn)
            rows = conn.execute(text(
                "SELECT id, host, pid, ns, executor, started_at, heartbeat_at FROM schedulers "
                "WHERE ended_at IS NULL AND heartbeat_at >= :t ORDER BY started_at"),
                {"t": now - lease_seconds}).mappings().all()
        return [dict(r) for r in rows]


def _orphaned_because(row: Row, lease_seconds: float, alive: Callable[[int], bool], host: str, ns: str,
                      now: float) -> str | None:
    """Why a running run (a ``_RUNNING`` row) is an orphan, or None if its owner may still be at work:
    its owner scheduler ran on ``host`` in PID namespace ``ns`` (a pid means nothing elsewhere: another
    container with the same hostname has its own pids) and ``alive(owner_pid)`` is False, or its
    heartbeat is older than ``lease_seconds`` (any host). The reason is the message of its
    ``reclaimed`` event."""
    if row.host == host and row.owner_ns == ns and row.owner_pid is not None and not alive(int(row.owner_pid)):
        return f"owner {row.owner} (pid {row.owner_pid} on {host}) is gone"
    if row.heartbeat_at is None or now - row.heartbeat_at > lease_seconds:
        age = "never" if row.heartbeat_at is None else f"{now - row.heartbeat_at:.0f} s ago"
        return f"owner {row.owner} on {row.host}: last heartbeat {age} (lease {lease_seconds:g} s)"
    return None
