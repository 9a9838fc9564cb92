"""``--set KEY=VALUE``: overrides of a spec (``imacsr train``) or of a grid's ``[base]`` (``run-grid``).

Each override is validated on its own first, so a bad key or value is blamed on the ``--set`` that
gave it, not on the file it is applied to.
"""

from __future__ import annotations

import tomllib
from typing import Any

from imacsr_cli.errors import SpecError
from imacsr_cli.spec.runspec import RunSpec, merge, set_dotted


def parse_override(item: str) -> tuple[str, Any]:
    """'train.epochs=2' → ('train.epochs', 2). The value is read as TOML; a bare word is a string."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=2")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        value = raw  # a bare word: take it as a string
    return key.strip(), value


def apply_overrides(tree: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """``tree`` (a spec in TOML layout) with every ``--set`` applied; ``tree`` itself is unchanged.
    SpecError "--set points.cnt=2: unknown key 'points.cnt'; ..." names the override at fault."""
    for item in items:
        key, value = parse_override(item)
        one: dict[str, Any] = {}
        try:
            set_dotted(one, key, value)
        except SpecError as exc:
            raise SpecError(f"--set {item}: {exc}") from None
        RunSpec.from_dict(one, source=f"--set {item}")
        tree = merge(tree, one)
    return tree
