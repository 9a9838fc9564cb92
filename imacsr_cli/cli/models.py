"""`imacsr models`: every registered model and variant, its size and its intermediate points."""

from __future__ import annotations

import json

import typer


def models(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    classes: int = typer.Option(19, "--classes", help="Number of classes K (sets the classifier size)."),
) -> None:
    """List models, variants, parameter counts at K classes, and their ordered intermediate points."""
    from imacsr_cli.models import registry
    from imacsr_cli.spec.ranges import check_option

    check_option("--classes", classes)
    rows = []
    for name in registry.names():
        entry = registry.get(name)
        for variant in entry.variants:
            # From the entry's metadata (no torch); a model that does not give its size is built.
            params = entry.parameter_count(variant, classes)
            if params is None:
                params = registry.count_parameters(registry.build(name, variant, classes))
            rows.append({
                "model": name, "variant": variant, "default": variant == entry.default_variant,
                "classes": classes, "parameters": params,
                "points": [{"name": p.name, "channels": p.channels, "stride": p.stride} for p in entry.points(variant)],
                "description": entry.description,
            })
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Models (parameters at {classes} classes)")
    for col in ("model", "variant", "params (M)", "intermediate points (name:channels/stride), input → output"):
        table.add_column(col, overflow="fold")
    for r in rows:
        pts = "  ".join(f"{p['name']}:{p['channels']}/{p['stride']}" for p in r["points"])
        table.add_row(r["model"], r["variant"] + (" *" if r["default"] else ""), f"{r['parameters'] / 1e6:.2f}", pts)
    Console().print(table)
    typer.echo("* default variant; one point in the list is one base distance for points.spacing")


def register(app: typer.Typer) -> None:
    app.command("models")(models)
