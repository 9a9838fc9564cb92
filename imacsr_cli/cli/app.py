"""The `imacsr` command: a thin Typer app. Each command group lives in its own module.

Library errors (ImacsrError) become one line on stderr and the error's exit code; anything else is a
bug and keeps its traceback. Command modules import heavy libraries (torch, pandas) inside the
command functions, so `imacsr status` starts fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from imacsr_cli.errors import ImacsrError

app = typer.Typer(
    name="imacsr",
    help="Run, track and report iMacSR ablation grids.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: no boxes that wrap at 80 columns, no "<bool>" after flags, and "[base]" printed
    # as written (rich markup would swallow it). -h works as --help, in every sub-command too.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from imacsr_cli import __version__

        typer.echo(f"imacsr {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Run, track and report iMacSR ablation grids."""


def _one_line_errors(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)  # keeps the signature Typer reads the options from
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except ImacsrError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _wrap_all(typer_app: typer.Typer) -> None:
    """Give every command (and sub-command) the one-line error handling."""
    for info in typer_app.registered_commands:
        if info.callback is not None:
            info.callback = _one_line_errors(info.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            group.typer_instance.rich_markup_mode = None  # the same plain help as the app's
            _wrap_all(group.typer_instance)


# Command modules, in the order `imacsr --help` lists them. Each defines register(app).
from imacsr_cli.cli import data as _data  # noqa: E402
from imacsr_cli.cli import grid as _grid  # noqa: E402
from imacsr_cli.cli import models as _models  # noqa: E402
from imacsr_cli.cli import report as _report  # noqa: E402
from imacsr_cli.cli import runs as _runs  # noqa: E402
from imacsr_cli.cli import spec as _spec  # noqa: E402
from imacsr_cli.cli import status as _status  # noqa: E402
from imacsr_cli.cli import train as _train  # noqa: E402

for _module in (_grid, _status, _runs, _train, _models, _spec, _data, _report):
    _module.register(app)
_wrap_all(app)


try:  # typer >= 0.24 carries its own copy of click; older ones use click itself
    from typer import _click as click
except ImportError:  # pragma: no cover - depends on the installed typer
    import click  # type: ignore[no-redef]


def main() -> int:
    """Run the app. A usage mistake (an unknown option or command, a missing argument, a value of the
    wrong type) is one line on stderr with exit code 2, like every other mistake, instead of click's
    three-line block; a bare `imacsr` or command group still prints its help."""
    try:
        code = app(standalone_mode=False)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "imacsr"
        typer.echo(f"error: {exc.format_message().rstrip('.')} (see '{where} -h')", err=True)
        return exc.exit_code
    except click.exceptions.ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        typer.echo("Aborted!", err=True)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
