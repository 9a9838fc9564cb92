"""Running grids: executors (where trainers run), the scheduler (claim → submit → watch → record)
and the failure taxonomy. Imports neither torch nor pandas."""

from imacsr_cli.launch.classify import Outcome, classify
from imacsr_cli.launch.executor import Executor, Job, LocalExecutor, Slot, detect_gpus, parse_gpus, plan_slots
from imacsr_cli.launch.scheduler import ActiveRun, GridOutcome, Observer, Scheduler

__all__ = [
    "ActiveRun",
    "Executor",
    "GridOutcome",
    "Job",
    "LocalExecutor",
    "Observer",
    "Outcome",
    "Scheduler",
    "Slot",
    "classify",
    "detect_gpus",
    "parse_gpus",
    "plan_slots",
]
