"""`imacsr train`: one run from a spec file, in this process, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import typer

from imacsr_cli.errors import RunFailed, SpecError, UsageError
from imacsr_cli.units import metric_text


def train(
    spec_file: Path = typer.Argument(..., help="Run spec (TOML), e.g. experiments/runs/tiny.toml."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run directory [default: results/runs/<run_id>]."),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a key, e.g. --set train.epochs=2 (repeatable)."),
) -> None:
    """Train one run and write spec.json, events.jsonl, checkpoint.pt, result.json, train.log."""
    from imacsr_cli import metric_names as mn
    from imacsr_cli.cli.progress import TrainProgress
    from imacsr_cli.rundir import RunPaths, read_result, write_spec
    from imacsr_cli.spec import RunSpec, resolve
    from imacsr_cli.spec.gridfile import TOP_KEYS
    from imacsr_cli.spec.overrides import apply_overrides
    from imacsr_cli.spec.runspec import read_toml
    from imacsr_cli.train.loop import run

    tree = read_toml(spec_file)
    grid_tables = [k for k in tree if k in TOP_KEYS and k not in RunSpec.__dataclass_fields__]
    if grid_tables:
        raise SpecError(f"{spec_file}: is a grid file (it has [{grid_tables[0]}]), not a run spec; "
                        f"run it with `imacsr run-grid {spec_file}`")
    tree = apply_overrides(tree, overrides)
    spec = resolve(RunSpec.from_dict(tree, source=str(spec_file)), source=str(spec_file))
    run_dir = run_dir or Path("results/runs") / spec.run_id
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--run-dir {run_dir}: is a file, expected a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--run-dir {run_dir}: cannot create it: {exc.strerror or exc}") from None
    paths = RunPaths(run_dir)
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
    shown = "  ".join(metric_text(name, means[name]) for name in mn.MAIN)
    typer.echo(f"succeeded: {shown}  (dataset-level)  →  {paths.result}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
