"""SQLAlchemy 2.x declarative models of the results database (the current schema version).

Tables (see docs/contracts.md, "Results database"):

- ``meta``       key/value; holds ``schema_version``.
- ``grids``      one row per grid file that was ever enqueued.
- ``runs``       one row per distinct run (run_id = hash of the resolved spec); its lifecycle state.
- ``grid_runs``  which grid holds which run, in which order, filling which cells (labels).
- ``metrics``    long format: (run_id, epoch, split, name) → value.
- ``events``     state changes of a run with their reasons (an audit trail).
- ``schedulers`` one row per scheduler process: its uuid (the ``owner`` of the runs it claims), where it
                 runs (host, pid, machine + pid-namespace identity) and its lease (``heartbeat_at``).

Times are Unix seconds (float). JSON columns are TEXT holding ``json.dumps`` output.
This module imports SQLAlchemy only (never torch or pandas), so ``imacsr status`` starts fast.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from imacsr_cli.rundir.codes import REASONS  # noqa: F401  (the reasons column's vocabulary)

#: The schema version this code writes. Bump it and add a migration in migrations.py together.
SCHEMA_VERSION = 4

#: Lifecycle states of a run.
STATES = ("queued", "running", "succeeded", "failed", "cancelled")

#: Reasons (why a run failed, or why it went back to the queue): imacsr_cli.rundir.codes.REASONS.


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Grid(Base):
    __tablename__ = "grids"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    reproduces: Mapped[str] = mapped_column(Text, default="")  # e.g. "Table VI"
    path: Mapped[str] = mapped_column(Text, default="")  # the grid file, as found when enqueued
    toml: Mapped[str] = mapped_column(Text, default="")  # the grid file's text when last enqueued
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Run(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String, primary_key=True)
    spec_json: Mapped[str] = mapped_column(Text)  # json.dumps(resolved_spec.to_dict())
    # Spec columns, denormalised from spec_json for filtering and reports.
    model: Mapped[str] = mapped_column(String)
    variant: Mapped[str] = mapped_column(String, default="")
    dataset: Mapped[str] = mapped_column(String)
    method: Mapped[str] = mapped_column(String)  # imacsr | conventional
    num_points: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    # v2: point placement (NULL for conventional runs) and the explicit point names (JSON list).
    position: Mapped[str | None] = mapped_column(String, nullable=True)
    spacing: Mapped[int | None] = mapped_column(Integer, nullable=True)
    points: Mapped[str] = mapped_column(Text, default="[]")
    # Lifecycle.
    state: Mapped[str] = mapped_column(String, default="queued")
    reason: Mapped[str | None] = mapped_column(String, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims since enqueue (or last retry)
    epoch: Mapped[int] = mapped_column(Integer, default=0)  # last finished epoch
    epochs: Mapped[int] = mapped_column(Integer, default=0)  # epochs planned
    owner: Mapped[str | None] = mapped_column(String, nullable=True)  # the scheduler that claimed it
    owner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)  # v2: that scheduler's pid
    host: Mapped[str | None] = mapped_column(String, nullable=True)  # that scheduler's host
    trainer_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    slot: Mapped[str | None] = mapped_column(String, nullable=True)  # e.g. "cuda:0" or "cpu:1"
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    run_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_val: Mapped[str | None] = mapped_column(Text, nullable=True)  # v2: JSON of the last val metrics
    # v3: retries spent since enqueue or the last `runs retry` (the --retries budget), and the code that
    # trained the run (JSON {"imacsr", "commit", "dirty"} from result.json; NULL until it succeeded).
    retries: Mapped[int] = mapped_column(Integer, default=0)
    code: Mapped[str | None] = mapped_column(Text, nullable=True)
    # v4 (cluster): the owner scheduler's machine + PID namespace ("<machine-id>:<pid-ns inode>"; its pid
    # is probed only from the same one), and the executor's handle of the trainer ("slurm:<job id>").
    owner_ns: Mapped[str | None] = mapped_column(String, nullable=True)
    handle: Mapped[str | None] = mapped_column(String, nullable=True)

    __table_args__ = (Index("ix_runs_state", "state"),)


class GridRun(Base):
    __tablename__ = "grid_runs"

    grid: Mapped[str] = mapped_column(ForeignKey("grids.name", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    # JSON list of label dicts: one dict per cell the run fills in this grid (usually one), e.g.
    # [{"figure": "3"}, {"table": "vi", "series": "II", "position": "input"}].
    cell: Mapped[str] = mapped_column(Text, default="[]")
    ord: Mapped[int] = mapped_column(Integer, default=0)  # v2: the run's place in the grid's order

    __table_args__ = (Index("ix_grid_runs_run", "run_id"), Index("ix_grid_runs_grid_ord", "grid", "ord"))


class Metric(Base):
    __tablename__ = "metrics"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    split: Mapped[str] = mapped_column(String, primary_key=True)  # train | val | final
    name: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_metrics_run_split", "run_id", "split"),)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String)
    time: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String)  # enqueued, claimed, started, epoch, succeeded, ...
    detail: Mapped[str] = mapped_column(Text, default="")  # one human-readable line
    reason: Mapped[str | None] = mapped_column(String, nullable=True)  # v2
    owner: Mapped[str | None] = mapped_column(String, nullable=True)  # v2: who made the change

    __table_args__ = (Index("ix_events_run", "run_id", "id"),)


class Scheduler(Base):
    """v4 (cluster): a scheduler process and its lease. ``id`` (a uuid) is the ``owner`` of its runs."""

    __tablename__ = "schedulers"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    host: Mapped[str] = mapped_column(String)
    pid: Mapped[int] = mapped_column(Integer)
    ns: Mapped[str] = mapped_column(String)  # machine id + PID-namespace inode (see claims.local_ns)
    executor: Mapped[str] = mapped_column(String, default="local")
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
