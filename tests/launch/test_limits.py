"""run-grid's timing options: one rule, in launch/limits.py, that the CLI and the Scheduler share."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from imacsr_cli.cli.app import app
from imacsr_cli.errors import UsageError
from imacsr_cli.launch import LocalExecutor, Scheduler, Slot, limits


@pytest.mark.parametrize("option, value, message", [
    # The rule of every number (spec/ranges.py): finite and in range, said the same way.
    ("--lease", "4.5", "--lease: expected a number of seconds in [5, 604800], got 4.5"),
    ("--lease", "nan", "--lease: expected a number of seconds in [5, 604800], got nan"),
    ("--timeout", "9", "--timeout: expected a number of seconds in [10, 604800], got 9.0"),
    ("--timeout", "inf", "--timeout: expected a number of seconds in [10, 604800], got inf"),
])
def test_the_cli_and_the_scheduler_refuse_the_same_values(tmp_path, option, value, message):
    r = CliRunner().invoke(app, ["run-grid", "no-such-grid.toml", option, value, "--db", str(tmp_path / "x.db")])
    assert r.exit_code == 2 and r.output.startswith(f"error: {message}"), r.output
    assert len(r.output.splitlines()) == 1 and not (tmp_path / "x.db").exists()
    kwargs = {"lease": float(value)} if option == "--lease" else {"timeout": float(value)}
    with pytest.raises(UsageError) as err:
        Scheduler(None, LocalExecutor([Slot(0)]), "g", tmp_path, **kwargs)
    assert str(err.value).startswith(message)


def test_the_smallest_allowed_values_are_accepted_by_both():
    limits.check_lease(limits.MIN_LEASE_S)
    limits.check_timeout(limits.MIN_TIMEOUT_S)
    limits.check_timeout(None)
    limits.check_retries(0)
    with pytest.raises(UsageError, match=r"--retries: expected an integer in \[0, 100\], got -1"):
        limits.check_retries(-1)
    # A slower poll needs a longer lease: three polls at least.
    with pytest.raises(UsageError, match=r"in \[6, 604800\]"):
        limits.check_lease(5.0, poll=2.0)
