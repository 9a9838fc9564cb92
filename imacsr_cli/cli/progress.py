"""A rich progress bar fed by trainer events (used by `imacsr train`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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

    def on_event(self, ev: dict[str, Any]) -> None:
        kind = ev["event"]
        if kind == "start":
            self.steps_per_epoch = max(ev["steps_per_epoch"], 1)
            total = ev["epochs"] * self.steps_per_epoch
            self.task = self.progress.add_task("starting", total=total, completed=ev["resumed_from"] * self.steps_per_epoch)
            if ev["resumed_from"]:
                self.console.print(f"resumed after epoch {ev['resumed_from']}")
        elif kind == "step" and ev.get("phase") == "train" and self.task is not None:
            done = (ev["epoch"] - 1) * self.steps_per_epoch + ev["step"]
            desc = f"epoch {ev['epoch']} loss {ev['loss']:.3f}{self.val}"
            self.progress.update(self.task, completed=done, description=desc)
        elif kind == "epoch" and ev.get("val"):
            self.val = " " + metric_text("mIoU", ev["val"]["mIoU"])
        elif kind == "end":
            self.end_message = ev.get("message") or ""
