"""run-grid's live display: fits 80 columns (no wrapped bar, whole headers), shows the epoch in
progress, and an ETA for the whole grid computed from the active runs' pace."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rich.console import Console

from imacsr_cli.cli.grid import LIVE_COLUMNS, render_live
from imacsr_cli.launch.executor import Slot
from imacsr_cli.launch.observer import ActiveRun, grid_eta

NOW = 10_000.0
SPEC = "points.position=central, points.count=2, points.spacing=3, seed=2"


def active(i: int, *, epoch: int = 0, current: int = 1, step: int = 3, steps: int = 8, epochs: int = 2,
           started: float | None = NOW - 40, resumed: int = 0) -> ActiveRun:
    a = ActiveRun(run=SimpleNamespace(run_id=f"{i:x}" * 12), job=SimpleNamespace(slot=Slot(i, threads=1)),
                  paths=None, attempt=1, launched=NOW - 50, log_offset=0)  # type: ignore[arg-type]
    a.epochs, a.epoch, a.current, a.step, a.steps, a.started_at, a.loss = epochs, epoch, current, step, steps, started, 1.2345
    a.resumed_from = resumed
    return a


def screen(width: int, runs: list[ActiveRun], counts: dict[str, int]) -> list[str]:
    console = Console(width=width, record=True, force_terminal=False, file=open("/dev/null", "w"))
    console.print(render_live(counts, counts["total"], runs, {a.run_id: SPEC for a in runs}, 2, width, NOW))
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 160])
def test_it_fits_the_terminal_with_whole_headers(width):
    runs = [active(1), active(2, epoch=1, current=1, step=0, steps=0)]
    lines = screen(width, runs, {"total": 24, "succeeded": 3, "failed": 1, "queued": 18})
    assert len(lines) == 5 and all(len(line) <= width for line in lines)
    # Closed form: 213.3 s and 80 s per run at the two runs' pace; 0.8125 + 0.5 + 18 runs left, 2 at a time.
    eta = (0.8125 + 0.5 + 18) * ((40 / (3 / 16) + 40 / 0.5) / 2) / 2
    assert round(eta) == 1416
    assert lines[0].rstrip().endswith(" 4/24 done · ETA 23m36s")  # the bar and its text on one line
    assert lines[1] == "3 ok · 1 failed · 2 running here · 18 queued"
    assert lines[2].split() == [word for column in LIVE_COLUMNS for word in column.split()]  # "mIoU (%)" is two words
    # Epoch 1 of 2 in progress is "1/2"; a run whose epoch 1 ended (no heartbeat of epoch 2 yet) runs epoch 2.
    assert lines[3].split()[:7] == ["111111111111", "cpu#1", "1/2", "3/8", "1.234", "-", "2m53s"]
    assert lines[4].split()[:4] == ["222222222222", "cpu#2", "2/2", "-"]
    spec = lines[3][lines[2].index("spec"):]
    assert spec == (SPEC if width == 160 else SPEC[: len(spec) - 1] + "…")


def test_the_epoch_shown_is_the_one_that_runs():
    assert active(1, epoch=0, current=1, epochs=1).shown_epoch() == 1  # "1/1" while epoch 1 runs, not 0/1
    assert active(1, epoch=0, current=0, epochs=1).shown_epoch() == 1  # started, no heartbeat yet
    assert active(1, epoch=0, current=0, epochs=1, started=None).shown_epoch() == 0  # not started
    starting = active(3, epoch=1, current=0, epochs=3, started=None, step=0, steps=0)  # a resumed run, starting
    lines = screen(80, [starting], {"total": 1, "queued": 0})
    assert lines[3].split()[:4] == ["333333333333", "cpu#3", "-/3", "-"]
    assert active(1, epoch=1, current=1, epochs=1).shown_epoch() == 1  # done


def test_grid_eta_closed_form():
    # Run A: 40 s for 3/8 of epoch 1 of 2 → 3/16 of the run → 213.33 s per run. Run B: resumed after
    # epoch 1 of 4, now half-way through epoch 2 → 1/8 of the run in 30 s → 240 s per run.
    a = active(1, epochs=2, epoch=0, current=1, step=3, steps=8, started=NOW - 40)
    b = active(2, epochs=4, epoch=1, current=2, step=4, steps=8, started=NOW - 30, resumed=1)
    per_run = (40 / (3 / 16) + 30 / (1 / 8)) / 2
    left = (1 - 3 / 16) + (1 - 1.5 / 4) + 5  # what is left of A and B, and 5 queued runs
    assert grid_eta([a, b], queued=5, parallel=2, now=NOW) == pytest.approx(left * per_run / 2)
    # Never sooner than the slowest active run alone; nothing to go on before any progress.
    assert grid_eta([b], queued=0, parallel=4, now=NOW) == pytest.approx(b.eta(NOW))
    assert grid_eta([active(1, step=0, current=0)], queued=3, parallel=1, now=NOW) is None
