"""`imacsr spec`: the keys a run spec takes, and what a spec file resolves to."""

from __future__ import annotations

import json
from pathlib import Path

import typer

spec_app = typer.Typer(help="Run specs: every key with its default, and a file resolved.", no_args_is_help=True)


@spec_app.command("keys")
def keys() -> None:
    """Every dotted key of a run spec, its default, what it means and the numbers it allows."""
    from imacsr_cli.spec.ranges import SPEC_RANGES
    from imacsr_cli.spec.runspec import field_docs

    for key, (default, doc) in field_docs().items():
        shown = json.dumps(list(default) if isinstance(default, tuple) else default)
        each = "each " if isinstance(default, (tuple, list)) else ""
        allowed = f"; {each}{SPEC_RANGES[key].text()}" if key in SPEC_RANGES else ""
        typer.echo(f"{key:<20} {shown:<16} {doc}{allowed}")


@spec_app.command("show")
def show(spec_file: Path = typer.Argument(..., help="Run spec (TOML).")) -> None:
    """The spec resolved against the registries (defaults, point names) and its run id, as JSON."""
    from imacsr_cli.spec import RunSpec, resolve

    spec = resolve(RunSpec.from_toml(spec_file), source=str(spec_file))
    typer.echo(json.dumps({"run_id": spec.run_id, "spec": spec.to_dict()}, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(spec_app, name="spec")
