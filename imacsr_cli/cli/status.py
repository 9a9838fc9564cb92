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
from imacsr_cli.units import fmt_metric, header, percent_keys

_now = time.time  # the clock of AGE columns (tests pin it)
# --runs lists what needs attention first: running, then failed, queued, cancelled, then succeeded runs
# (grid order within each state), in the table, the JSON and --watch alike.
STATE_ORDER = ("running", "failed", "queued", "cancelled", "succeeded")


def status(
    grid: str = typer.Argument(None, help="Only this grid (default: every grid)."),
    runs: bool = typer.Option(False, "--runs", help="One row per run."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    watch: bool = typer.Option(False, "--watch", help="Refresh until Ctrl-C."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between refreshes with --watch."),
    db: str = db_option(),
) -> None:
    """Grids with their runs' counts by state and progress; --runs lists the runs."""
    from imacsr_cli.store import Store

    from imacsr_cli.spec.ranges import check_option

    check_option("--interval", interval)
    if watch and as_json:
        raise typer.BadParameter("--watch shows a live table; leave out --json", param_hint="--watch")
    with Store.open(db, create=False) as store:
        if grid is not None:
            store.grid(grid)  # NotFound "no grid 'x'" for a typo
        if as_json:
            typer.echo(json.dumps(_json(store, grid, runs), indent=2))
            return
        if not watch:
            typer.echo(render(store, grid, runs, width=_terminal_width()))
            return
        _watch(store, grid, runs, interval)


def _terminal_width() -> int | None:
    """The terminal's width when stdout is one (tables are then fitted to it), else None (whole lines)."""
    import shutil
    import sys

    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def render(store: Any, grid: str | None, runs: bool, width: int | None = None) -> str:
    """The text of ``imacsr status``: the grids table, then with ``runs`` the runs table (fitted to
    ``width`` columns when given: see ``_runs_table``)."""
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
        return text + "\n\n" + _runs_table(store, grid, width)
    if grid is None:
        # The overview of every grid reads the database only: a disk check of each succeeded run
        # would cost `imacsr status` about a second at 100,000 runs. `status GRID` makes it.
        return text
    from imacsr_cli.launch.rerun import missing_results

    lost = _wrap(_lost_note(missing_results(store.succeeded_run_dirs(grid))), width)
    return text + (f"\n\n{lost}" if lost else "")


def _summary(store: Any, grid: str | None) -> list[dict[str, Any]]:
    # Records, not a DataFrame: `imacsr status` then never imports pandas (0.2 s of its start-up).
    summary = store.grid_summary(records=True)
    return [g for g in summary if g["grid"] == grid] if grid is not None else summary


def _runs(store: Any, grid: str | None, states: list[str] | None = None) -> list[dict[str, Any]]:
    """The runs in STATE_ORDER, each with ``files_missing`` (a succeeded run whose result.json is gone)."""
    from imacsr_cli.launch.rerun import result_missing

    records = store.runs_frame(grid, states=states, records=True)
    rank = {s: i for i, s in enumerate(STATE_ORDER)}
    records.sort(key=lambda r: rank.get(r["state"], len(rank)))  # stable: grid order within a state
    for r in records:
        # Only runs with a stored (absolute) directory: where a never-started run would go is unknown here.
        r["files_missing"] = bool(r.get("run_dir")) and result_missing(r, "results/runs")
    return records


def _runs_table(store: Any, grid: str | None, width: int | None = None) -> str:
    """One row per run. Fitted to ``width`` (a terminal): the SPEC column leaves out what every run
    shares (the model of a one-model grid...), then SPEC and CELL are shortened with an ellipsis."""
    records = _runs(store, grid)
    if not records:
        return "no runs"
    now = _now()
    specs = [spec_text(r) for r in records]
    headers = ["RUN", "SPEC", "STATE", "EPOCH", header(mn.MIOU), "AGE", "REASON", "CELL" if grid is not None else "GRIDS"]
    rows = []
    for r, spec in zip(records, specs):
        reason = "result.json missing" if r["files_missing"] else r["reason"] if _present(r["reason"]) else "-"
        rows.append([r["run_id"], spec, r["state"], f"{r['epoch']}/{r['epochs']}", _miou(r),
                     age(_age_seconds(r, now)), reason,
                     cells_text(r["cells"]) if grid is not None else (r["grids"] or "-")])
    if width is not None and len(table(headers, rows).splitlines()[0]) > width:
        for row, spec in zip(rows, _varying(records)):
            row[1] = spec
    text = table(headers, rows, right=(3, 4, 5), width=width, shrink=(1, 7))
    lost = _wrap(_lost_note(sum(r["files_missing"] for r in records)), width)
    return text + (f"\n\n{lost}" if lost else "")


def _wrap(text: str, width: int | None) -> str:
    import textwrap

    return textwrap.fill(text, width, break_on_hyphens=False, break_long_words=False) if width and text else text


def _lost_note(n: int) -> str:
    """'2 succeeded runs have lost their result.json ...' ('' when none has)."""
    if not n:
        return ""
    return (f"{n} succeeded run{'s have' if n != 1 else ' has'} lost {'their' if n != 1 else 'its'} result.json "
            f"(run directory deleted?): `imacsr run-grid GRID --retrain-missing` or `imacsr runs rerun ID` "
            f"trains {'them' if n != 1 else 'it'} again")


def _json(store: Any, grid: str | None, runs: bool) -> Any:
    out: dict[str, Any] = {"grids": [_clean(r) for r in _summary(store, grid)]}
    if runs:
        out["runs"] = [percent_keys(_clean(r)) for r in _runs(store, grid)]  # metrics in %, keys *_pct
    return out


def _watch(store: Any, grid: str | None, runs: bool, interval: float) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def frame() -> Text:
        stamp = time.strftime("%H:%M:%S")
        return Text(f"{render(store, grid, runs, width=console.width)}\n\n{stamp} · every {interval:g} s · "
                    f"Ctrl-C to quit")

    console = Console()
    try:
        with Live(frame(), console=console, auto_refresh=False, transient=False) as live:
            while True:
                time.sleep(interval)
                live.update(frame(), refresh=True)
    except KeyboardInterrupt:
        pass  # quitting a watch is not an error


# ---- formatting helpers (shared with `imacsr runs`) -------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = (),
          width: int | None = None, shrink: Sequence[int] = ()) -> str:
    """Aligned columns, two spaces apart; columns in ``right`` are right-aligned. No trailing spaces.
    With ``width``, the columns in ``shrink`` (widest first, down to 8 characters) are shortened with
    an ellipsis until the lines fit."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    if width is not None:
        excess = sum(widths) + 2 * (len(widths) - 1) - width
        while excess > 0:
            cands = [i for i in shrink if widths[i] > max(8, len(headers[i]))]
            if not cands:
                break
            widest = max(cands, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
    right = set(right)
    lines = []
    for r in cells:
        r = [v if len(v) <= widths[i] else v[: widths[i] - 1] + "…" for i, v in enumerate(r)]
        parts = [v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(r)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _varying(records: list[dict[str, Any]]) -> list[str]:
    """Each run's spec text without the parts that are the same in every run that has them (the model
    of a one-model grid, the position of a grid that varies only M...); never empty."""
    parts = [_spec_parts(r) for r in records]
    values: dict[str, set[str]] = {}
    for p in parts:
        for name, text in p:
            values.setdefault(name, set()).add(text)
    same = {name for name, v in values.items() if len(v) == 1}
    return [" ".join(t for n, t in p if n not in same) or " ".join(t for _, t in p) for p in parts]


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
    return " ".join(text for _, text in _spec_parts(r))


def _spec_parts(r: dict[str, Any]) -> list[tuple[str, str]]:
    parts = [("model", str(r["model"]) + (f"/{r['variant']}" if r.get("variant") else "")),
             ("method", str(r["method"]))]
    if r["method"] != "conventional":
        parts.append(("points", f"M={r['num_points']}"))
        if _present(r.get("position")):
            parts.append(("position", str(r["position"])))
        if _present(r.get("spacing")):
            parts.append(("spacing", f"s={int(r['spacing'])}"))
    parts.append(("seed", f"seed={r['seed']}"))
    return parts


def cells_text(cells: Any) -> str:
    if not cells:
        return "-"
    return "; ".join(",".join(f"{k}={v}" for k, v in cell.items()) for cell in cells)


def _miou(r: dict[str, Any]) -> str:
    """Final mIoU when the run finished, else the last evaluation's (in %, units.fmt_metric)."""
    for key in (f"final/{mn.MIOU}", f"val/{mn.MIOU}"):
        v = _num(r.get(key))
        if v is not None:
            return fmt_metric(v)
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
