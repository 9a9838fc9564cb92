"""The Store's read-only side: run lookups and the queries that status, runs and reports read.

Every method reads in one deferred transaction (a consistent snapshot that never blocks a writer).
The DataFrame queries import pandas inside the method; ``records=True`` variants do not import it
at all (the fast CLI path).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, text

from imacsr_cli import metric_names as mn
from imacsr_cli.errors import NotFound
from imacsr_cli.rundir import CodeVersion
from imacsr_cli.store.engine import Connected, chunks, retrying_methods
from imacsr_cli.store.models import STATES, GridRun, Run

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: The SQL list of the dataset-level metric names, for the queries that read final metrics.
_MAIN_SQL = ", ".join(f"'{m}'" for m in mn.MAIN)


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
    retries: int = 0  # v3: retries spent since enqueue or the last `runs retry`
    handle: str | None = None  # the executor's handle of the trainer ("slurm:<job id>"), if not a local pid

    @property
    def spec(self) -> dict[str, Any]:
        """The run's spec as a dict (TOML layout), parsed from ``spec_json``."""
        return json.loads(self.spec_json)


_RECORD_COLUMNS = tuple(RunRecord.__dataclass_fields__)


def cells_of(labels: Any) -> list[dict[str, Any]]:
    """A grid row's labels as a list of cell dicts (one dict → [dict]; None or {} → [])."""
    if labels is None:
        return []
    if isinstance(labels, Mapping):
        return [dict(labels)] if labels else []
    return [dict(c) for c in labels]


MIN_PREFIX = 4  # characters of a run id that `imacsr runs ...` accepts as a prefix


@retrying_methods
class Queries(Connected):
    """The read-only lookups and queries of ``Store`` (claims.py and store.py add the writes)."""

    # ---- lookups ----------------------------------------------------------------------------------
    def _full_id(self, conn: Connection, run_id: str) -> str:
        if conn.execute(text("SELECT 1 FROM runs WHERE run_id = :r"), {"r": run_id}).scalar():
            return run_id
        hexadecimal = bool(run_id) and all(c in "0123456789abcdefABCDEF" for c in run_id)
        prefix = run_id.lower() if hexadecimal else run_id
        if len(prefix) >= MIN_PREFIX:
            # Matched literally: LIKE's wildcards (_ %) and its escape character are escaped.
            pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            hits = [r for (r,) in conn.execute(
                text("SELECT run_id FROM runs WHERE run_id LIKE :p ESCAPE '\\' ORDER BY run_id LIMIT 3"),
                {"p": pattern}) if r.startswith(prefix)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise NotFound(f"run id prefix {run_id!r} is ambiguous ({', '.join(hits[:2])}, ...); give more of it")
        if not hexadecimal:
            raise NotFound(f"{run_id!r} is not a run id: ids are hexadecimal, e.g. 3fa2c1d0e9b8 "
                           f"(`imacsr status --runs` lists them)")
        if len(prefix) < MIN_PREFIX:
            raise NotFound(f"run id prefix {run_id!r} is too short: give at least {MIN_PREFIX} characters")
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

    def records(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        """The rows of those of ``run_ids`` that are in the database (full ids), by id."""
        out: dict[str, RunRecord] = {}
        with self._read() as conn:
            for chunk in chunks(list(dict.fromkeys(run_ids))):
                q = text(f"SELECT {', '.join(_RECORD_COLUMNS)} FROM runs WHERE run_id IN "
                         f"({', '.join(f':r{i}' for i in range(len(chunk)))})")
                for row in conn.execute(q, {f"r{i}": r for i, r in enumerate(chunk)}).mappings():
                    out[row["run_id"]] = RunRecord(**row)
        return out

    def grid_run_ids(self, grid: str) -> list[str]:
        """The run ids of a grid, in grid order ([] for an unknown grid)."""
        with self._read() as conn:
            return [r for (r,) in conn.execute(
                text("SELECT run_id FROM grid_runs WHERE grid = :g ORDER BY ord, run_id"), {"g": grid})]

    def succeeded_run_dirs(self, grid: str | None = None) -> list[str]:
        """The stored run directories of the succeeded runs (of ``grid``): what a check that their
        result.json is still on disk needs, without loading whole rows (status at 100,000 runs)."""
        sql = ("SELECT r.run_dir FROM runs r" + (" JOIN grid_runs g ON g.run_id = r.run_id AND g.grid = :g"
                                                 if grid is not None else "")
               + " WHERE r.state = 'succeeded' AND r.run_dir IS NOT NULL")
        with self._read() as conn:
            return [d for (d,) in conn.execute(text(sql), {"g": grid} if grid is not None else {}) if d]

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
        (oldest first), ``code`` (a CodeVersion, or None before the run succeeded or for runs finished
        before schema v3). A unique prefix of ≥ 4 characters works; NotFound "no run 'x'; ..." otherwise."""
        with self._read() as conn:
            run_id = self._full_id(conn, run_id)
            row = dict(conn.execute(text("SELECT * FROM runs WHERE run_id = :r"), {"r": run_id}).mappings().one())
            row["spec"] = json.loads(row["spec_json"])
            row["points"] = json.loads(row["points"] or "[]")
            row["last_val"] = json.loads(row["last_val"]) if row["last_val"] else {}
            row["code"] = CodeVersion.from_dict(json.loads(row["code"])) if row["code"] else None
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
                    f"WHERE g.grid = :g AND m.split = 'final' AND m.name IN ({_MAIN_SQL})")
        else:
            sql = f"SELECT {cols} FROM runs r" + (" WHERE " + " AND ".join(where) if where else "")
            sql += " ORDER BY r.created_at, r.run_id"
            fsql = f"SELECT run_id, name, value FROM metrics WHERE split = 'final' AND name IN ({_MAIN_SQL})"
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
            for m in mn.MAIN:
                rec[f"val/{m}"] = last_val.get(m)
            f = fin.get(rec["run_id"], {})
            for m in mn.MAIN:
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
        order += [f"val/{m}" for m in mn.MAIN] + [f"final/{m}" for m in mn.MAIN]
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
                for chunk in chunks(ids):
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
                Run.seed, Run.state, Run.reason, Run.message, Run.created_at, Run.code)
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
            result = conn.execute(q)
            names_ = list(result.keys())
            runs = [dict(zip(names_, r)) for r in result]  # plain tuples: 20,000 runs read fast
            cells: dict[str, dict[str, list]] = {}
            for run_id, g, cell in conn.execute(links):
                cells.setdefault(run_id, {})[g] = cells_of(json.loads(cell) if cell else [])
            metrics: dict[str, dict[str, float]] = {}
            for run_id, name, value, _epoch in conn.execute(mq):  # ordered by epoch: a later finish wins
                metrics.setdefault(run_id, {})[name] = float("nan") if value is None else float(value)
        for r in runs:
            r["spec"] = r.pop("spec_json")
            r["cells"] = cells.get(r["run_id"], {})
        return runs, metrics
