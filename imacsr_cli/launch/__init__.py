"""Running grids: executors (where trainers run), the scheduler (claim → submit → watch → record),
what it reports (observer.py), run-grid's plan-time checks (plan.py) and the failure taxonomy.
Imports neither torch nor pandas."""

from imacsr_cli.launch import limits
from imacsr_cli.launch.classify import Outcome, classify
from imacsr_cli.launch.executor import Executor, Job, LocalExecutor, Slot, detect_gpus, parse_gpus, plan_slots
from imacsr_cli.launch.observer import ActiveRun, GridOutcome, Observer
from imacsr_cli.launch.scheduler import Scheduler

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
    "limits",
    "parse_gpus",
    "plan_slots",
]
