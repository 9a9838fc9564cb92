"""`imacsr status [GRID]`: what the results database says, as a plain table, JSON, or a live view.

Output is plain aligned text (no terminal-width dependent boxes), so it is exact and stable for tests
and scripts; ``--json`` is the format for programs. Imports pandas only inside the command (through
the store's query methods) and never torch, so it starts fast.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

import typer

from imacsr_cli import metric_names as mn
from imacsr_cli.cli.options import db_option

_now = time.time  # the clock of AGE columns (tests pin it)


def status(
    grid: str = typer.Argument(None, help="Only this grid (default: every grid)."),
    runs: bool = typer.Option(False, "--runs", help="One row per run."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    watch: bool = typer.Option(False, "--watch", help="Refresh until Ctrl-C."),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between refreshes with --watch."),
    db: str = db_option(),
) -> None:
    """Grids with their runs' counts by state and progress; --runs lists the runs."""
    from imacsr_cli.store import Store

    if watch and as_json:
        raise typer.BadParameter("--watch shows a live table; leave out --json", param_hint="--watch")
    with Store.open(db, create=False) as store:
        if grid is not None:
            store.grid(grid)  # NotFound "no grid 'x'" for a typo
        if as_json:
            typer.echo(json.dumps(_json(store, grid, runs), indent=2))
            return
        if not watch:
            typer.echo(render(store, grid, runs))
            return
        _watch(store, grid, runs, interval)


def render(store: Any, grid: str | None, runs: bool) -> str:
    """The text of ``imacsr status``: the grids table, then with ``runs`` the runs table."""
    summary = _summary(store, grid)
    if not summary:
        return "no grids yet: `imacsr run-grid GRID` adds one"
    rows = []
    for g in summary:
        progress = 100.0 * g["epochs_done"] / g["epochs_total"] if g["epochs_total"] else 0.0
        rows.append([g["grid"], g["total"], g["queued"], g["running"], g["succeeded"], g["failed"],
                     g["cancelled"], f"{g['epochs_done']}/{g['epochs_total']}", f"{progress:.0f}%"])
    text = table(["GRID", "RUNS", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "EPOCHS", "PROGRESS"],
                 rows, right=range(1, 9))
    if runs:
        text += "\n\n" + _runs_table(store, grid)
    return text


def _summary(store: Any, grid: str | None) -> list[dict[str, Any]]:
    # Records, not a DataFrame: `imacsr status` then never imports pandas (0.2 s of its start-up).
    summary = store.grid_summary(records=True)
    return [g for g in summary if g["grid"] == grid] if grid is not None else summary


def _runs_table(store: Any, grid: str | None) -> str:
    records = store.runs_frame(grid, records=True)
    if not records:
        return "no runs"
    now = _now()
    rows = []
    for r in records:
        rows.append([r["run_id"], spec_text(r), r["state"], f"{r['epoch']}/{r['epochs']}", _miou(r),
                     age(_age_seconds(r, now)), r["reason"] if _present(r["reason"]) else "-",
                     cells_text(r["cells"]) if grid is not None else (r["grids"] or "-")])
    return table(["RUN", "SPEC", "STATE", "EPOCH", mn.MIOU, "AGE", "REASON", "CELL" if grid is not None else "GRIDS"],
                 rows, right=(3, 4, 5))


def _json(store: Any, grid: str | None, runs: bool) -> Any:
    out: dict[str, Any] = {"grids": [_clean(r) for r in _summary(store, grid)]}
    if runs:
        out["runs"] = [_clean(r) for r in store.runs_frame(grid, records=True)]
    return out


def _watch(store: Any, grid: str | None, runs: bool, interval: float) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def frame() -> Text:
        stamp = time.strftime("%H:%M:%S")
        return Text(f"{render(store, grid, runs)}\n\n{stamp} · every {interval:g} s · Ctrl-C to quit")

    try:
        with Live(frame(), console=Console(), auto_refresh=False, transient=False) as live:
            while True:
                time.sleep(interval)
                live.update(frame(), refresh=True)
    except KeyboardInterrupt:
        pass  # quitting a watch is not an error


# ---- formatting helpers (shared with `imacsr runs`) -------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """Aligned columns, two spaces apart; columns in ``right`` are right-aligned. No trailing spaces."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = set(right)
    lines = []
    for r in cells:
        parts = [v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(r)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def age(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def _age_seconds(r: dict[str, Any], now: float) -> float | None:
    """Running: since the last heartbeat; finished: since it ended; queued: since it was enqueued."""
    key = {"running": "heartbeat_at", "queued": "created_at"}.get(r["state"], "finished_at")
    t = _num(r.get(key))
    return None if t is None else now - t


def spec_text(r: dict[str, Any]) -> str:
    """'deeplabv3plus imacsr M=2 input s=1 seed=0' (the spec columns that vary in grids)."""
    parts = [str(r["model"]) + (f"/{r['variant']}" if r.get("variant") else ""), str(r["method"])]
    if r["method"] != "conventional":
        parts.append(f"M={r['num_points']}")
        if _present(r.get("position")):
            parts.append(str(r["position"]))
        if _present(r.get("spacing")):
            parts.append(f"s={int(r['spacing'])}")
    parts.append(f"seed={r['seed']}")
    return " ".join(parts)


def cells_text(cells: Any) -> str:
    if not cells:
        return "-"
    return "; ".join(",".join(f"{k}={v}" for k, v in cell.items()) for cell in cells)


def _miou(r: dict[str, Any]) -> str:
    """Final mIoU when the run finished, else the last evaluation's (in %)."""
    for key in (f"final/{mn.MIOU}", f"val/{mn.MIOU}"):
        v = _num(r.get(key))
        if v is not None:
            return f"{100 * v:.1f}"
    return "-"


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _present(v: Any) -> bool:
    if v is None:
        return False
    try:
        return not (isinstance(v, float) and math.isnan(v)) and str(v) != "<NA>"
    except TypeError:
        return False


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """A DataFrame record as plain JSON values (NaN / NA → null, numpy scalars → Python)."""
    out = {}
    for k, v in record.items():
        if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
            v = v.item()
        if v is not None and not isinstance(v, (list, dict, str, bool, int, float)):
            v = None if str(v) in ("<NA>", "NaT", "nan") else str(v)
        if isinstance(v, float) and math.isnan(v):
            v = None
        out[k] = v
    return out


def register(app: typer.Typer) -> None:
    app.command("status")(status)
