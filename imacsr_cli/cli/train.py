"""`imacsr train`: one run from a spec file, in this process, with a progress bar."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import typer

from imacsr_cli.errors import RunFailed, SpecError


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=2")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: take it as a string
    return key.strip(), value


def train(
    spec_file: Path = typer.Argument(..., help="Run spec (TOML), e.g. experiments/runs/tiny.toml."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run directory [default: results/runs/<run_id>]."),
    overrides: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set train.epochs=2."),
) -> None:
    """Train one run and write spec.json, events.jsonl, checkpoint.pt, result.json, train.log."""
    from imacsr_cli import metric_names as mn
    from imacsr_cli.cli.progress import TrainProgress
    from imacsr_cli.rundir import RunPaths, read_result, write_spec
    from imacsr_cli.spec import RunSpec, resolve
    from imacsr_cli.spec.runspec import read_toml, set_dotted
    from imacsr_cli.train.loop import run

    tree = read_toml(spec_file)
    for item in overrides:
        set_dotted(tree, *_parse_override(item))
    spec = resolve(RunSpec.from_dict(tree, source=str(spec_file)), source=str(spec_file))
    paths = RunPaths(run_dir or Path("results/runs") / spec.run_id)
    if paths.spec.exists():
        existing = resolve(RunSpec.from_json(paths.spec))
        if existing.run_id != spec.run_id:
            raise SpecError(f"{paths.root}: holds run {existing.run_id}, not {spec.run_id}; choose another --run-dir")
    write_spec(paths, spec.to_dict())  # the scheduler writes it the same way
    typer.echo(f"run {spec.run_id} in {paths.root}")
    with TrainProgress() as progress:
        code = run(paths.root, listener=progress.on_event)
    if code != 0:
        raise RunFailed(f"run {spec.run_id} failed (exit {code}): {progress.end_message or 'see ' + str(paths.log)}")
    means = read_result(paths, spec.run_id).dataset.means
    shown = "  ".join(f"{name} {_pct(means[name])}" for name in mn.MAIN)
    typer.echo(f"succeeded: {shown}  (dataset-level, %)  →  {paths.result}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def register(app: typer.Typer) -> None:
    app.command("train")(train)
