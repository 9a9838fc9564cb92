"""Point selection: (count, position, spacing) or explicit names → indices into a model's point list.

One base distance is one step along the registry's ordered list. `input` starts at the first point,
`output` ends at the last, `central` is centred (rounded towards the input). Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from imacsr_cli.errors import SpecError


def select_indices(n: int, count: int, position: str, spacing: int, model: str = "model") -> list[int]:
    """Indices of `count` points `spacing` apart at `position` among `n` candidates."""
    if count < 1:
        raise SpecError(f"key 'points.count': expected at least 1 point for method 'imacsr', got {count}")
    if spacing < 1:
        raise SpecError(f"key 'points.spacing': expected at least 1 base distance, got {spacing}")
    span = (count - 1) * spacing + 1
    if span > n:
        most = (n - 1) // spacing + 1
        raise SpecError(
            f"key 'points': {count} points at spacing {spacing} span {span} positions but {model} has "
            f"{n} candidate points; at spacing {spacing} at most {most} fit"
        )
    if position == "input":
        start = 0
    elif position == "output":
        start = n - span
    elif position == "central":
        start = (n - span) // 2
    else:
        raise SpecError(f"key 'points.position': expected one of 'input', 'central', 'output', got {position!r}")
    return [start + i * spacing for i in range(count)]


def select_names(candidates: Sequence[str], names: Sequence[str], model: str = "model") -> list[str]:
    """Validate explicit point names; keep them in the model's input→output order."""
    unknown = [n for n in names if n not in candidates]
    if unknown:
        raise SpecError(
            f"key 'points.names': {model} has no point {unknown[0]!r}; expected some of {', '.join(candidates)}"
        )
    if len(set(names)) != len(names):
        raise SpecError("key 'points.names': a point is named twice")
    return [c for c in candidates if c in set(names)]
