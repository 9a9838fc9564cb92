"""Helpers of the store tests: run specs and grid rows."""

from __future__ import annotations


def spec_dict(i: int, **over) -> dict:
    """A resolved-looking spec dict (TOML layout) for run number i."""
    spec = {
        "model": {"name": "deeplabv3plus", "variant": "smp"},
        "data": {"name": "synthetic"},
        "method": {"name": "imacsr", "alpha": 0.4, "lambda": 0.01},
        "points": {"names": ["stem", "layer1.1"], "count": 2, "position": "input", "spacing": 2},
        "train": {"epochs": 3, "seed": i},
    }
    for key, value in over.items():
        section, name = key.split("__")
        spec[section][name] = value
    return spec


def rows(n: int, start: int = 0, prefix: str = "run", labels=None) -> list[dict]:
    return [{"run_id": f"{prefix}{i:05d}", "spec": spec_dict(i), "labels": labels if labels is not None
             else {"figure": "3"}} for i in range(start, start + n)]
