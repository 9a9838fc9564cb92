"""A rich progress bar fed by trainer events (used by `imacsr train`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from imacsr_cli import metric_names as mn
from imacsr_cli.rundir import End, Epoch, Event, Start, Step
from imacsr_cli.units import metric_text


class TrainProgress:
    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.task: Any = None
        self.steps_per_epoch = 1
        self.val = ""
        self.end_message = ""

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, ev: Event | Step) -> None:
        if isinstance(ev, Start):
            self.steps_per_epoch = max(ev.steps_per_epoch, 1)
            total = ev.epochs * self.steps_per_epoch
            self.task = self.progress.add_task("starting", total=total, completed=ev.resumed_from * self.steps_per_epoch)
            if ev.resumed_from:
                self.console.print(f"resumed after epoch {ev.resumed_from}")
        elif isinstance(ev, Step) and ev.phase == "train" and self.task is not None:
            done = (ev.epoch - 1) * self.steps_per_epoch + ev.step
            loss = "-" if ev.loss is None else f"{ev.loss:.3f}"
            self.progress.update(self.task, completed=done, description=f"epoch {ev.epoch} loss {loss}{self.val}")
        elif isinstance(ev, Epoch) and ev.val.get(mn.MIOU) is not None:
            self.val = " " + metric_text(mn.MIOU, ev.val[mn.MIOU])
        elif isinstance(ev, End):
            self.end_message = ev.message
