"""Run and grid specifications: pure data, validated, hashed."""

from imacsr_cli.spec.resolve import resolve
from imacsr_cli.spec.runspec import RunSpec

__all__ = ["RunSpec", "resolve"]
