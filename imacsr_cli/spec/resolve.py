"""Resolve a RunSpec against the model and dataset registries.

Resolution fills every default that depends on the model or dataset (variant, image sizes, split,
class set), turns the point selection into explicit point names, checks what can only be checked
against a registry (impossible points, α/λ lists of the wrong length), and normalises what does not
matter (a conventional run has no points and no α/λ), so equal runs hash equal.

The registries are metadata: nothing here builds a model or reads a dataset.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from imacsr_cli.errors import SpecError
from imacsr_cli.spec.points import select_indices, select_names
from imacsr_cli.spec.runspec import DataSpec, MethodSpec, PointsSpec, RunSpec


_DEFAULT_POINTS = PointsSpec()
_DEFAULT_METHOD = MethodSpec()


def resolve(spec: RunSpec, source: str | None = None) -> RunSpec:
    """The resolved spec. ``source`` (a file name) prefixes any error, as RunSpec.from_dict does."""
    try:
        return _resolve(spec)
    except SpecError as exc:
        if source is None:
            raise
        raise SpecError(f"{source}: {exc}") from None


def _resolve(spec: RunSpec) -> RunSpec:
    from imacsr_cli.data import registry as data_registry
    from imacsr_cli.models import registry as model_registry

    entry = model_registry.get(spec.model.name)
    variant = model_registry.check_variant(entry, spec.model.variant)
    model = dataclasses.replace(spec.model, variant=variant)
    data = _resolve_data(spec.data, data_registry.get(spec.data.name))
    _check_train(dataclasses.replace(spec, data=data))

    if spec.method.name == "conventional":
        # replace(), not a new object: a key added later (with its legacy value) is kept. The keys
        # that only an iMacSR run reads are set to fixed values, so the baseline is one run.
        points = dataclasses.replace(spec.points, names=[], count=0, position="input", spacing=1)
        method = dataclasses.replace(spec.method, name="conventional", alpha=[], lam=[],
                                     adapter=_DEFAULT_METHOD.adapter, ne=_DEFAULT_METHOD.ne)
    else:
        candidates = list(model_registry.point_names(entry.name, variant))
        label = f"{entry.name} ({variant})"
        if spec.points.names:
            names = select_names(candidates, spec.points.names, label)
            position, spacing = _ignored_selection(candidates, names, spec.points)
            points = dataclasses.replace(spec.points, names=names, count=len(names), position=position,
                                         spacing=spacing)
        else:
            idx = select_indices(len(candidates), spec.points.count, spec.points.position, spec.points.spacing, label)
            # With one point the spacing is meaningless; fix it so equal runs hash equal.
            spacing = spec.points.spacing if spec.points.count > 1 else 1
            points = dataclasses.replace(spec.points, names=[candidates[i] for i in idx], spacing=spacing)
        method = spec.method
        for key, value in (("alpha", method.alpha), ("lambda", method.lam)):
            if isinstance(value, list) and len(value) != points.count:
                raise SpecError(
                    f"key 'method.{key}': expected a number or {points.count} numbers (one per point), "
                    f"got {len(value)}"
                )
    return dataclasses.replace(spec, model=model, data=data, method=method, points=points)


def _ignored_selection(candidates: list[str], names: list[str], points: PointsSpec) -> tuple[str, int]:
    """points.position and points.spacing of a spec that names its points: they select nothing, so
    they must not tell two runs of the same points apart. Kept when they describe exactly these names
    (a resolved spec.json is such a spec: resolving it again must give the same id); otherwise set to
    the defaults, the values a spec giving only names has always hashed with, so ids pinned before
    this rule keep (docs/contracts.md, "Run identity")."""
    try:
        idx = select_indices(len(candidates), len(names), points.position, points.spacing)
    except SpecError:
        idx = []
    if [candidates[i] for i in idx] == names:
        return points.position, points.spacing
    return _DEFAULT_POINTS.position, _DEFAULT_POINTS.spacing


def _resolve_data(data: DataSpec, entry: Any) -> DataSpec:
    empty = {"split": "", "classes": "", "train_size": (0, 0), "eval_size": (0, 0),
             "scale_range": (0.0, 0.0), "num_train": 0, "num_val": 0}
    changes = {k: v for k, v in entry.defaults.items() if k in empty and getattr(data, k) == empty[k]}
    data = dataclasses.replace(data, **changes)
    if entry.splits and data.split not in entry.splits:
        raise SpecError(
            f"key 'data.split': dataset {entry.name!r} has no split {data.split!r}; "
            f"expected one of {', '.join(entry.splits)}"
        )
    if entry.class_sets and data.classes not in entry.class_sets:
        raise SpecError(
            f"key 'data.classes': dataset {entry.name!r} has no class set {data.classes!r}; "
            f"expected one of {', '.join(entry.class_sets)}"
        )
    for key in ("train_size", "eval_size"):
        h, w = getattr(data, key)
        if h < 8 or w < 8:
            raise SpecError(f"key 'data.{key}': expected [height, width] of at least 8 pixels, got [{h}, {w}]")
    lo, hi = data.scale_range
    if not 0 < lo <= hi:
        raise SpecError(f"key 'data.scale_range': expected [low, high] with 0 < low <= high, got [{lo}, {hi}]")
    if not entry.needs_root and data.resize != "whole":
        # Generated scenes are rendered at the training size and never resized: one run, one id.
        data = dataclasses.replace(data, resize="whole")
    return data


def _check_train(spec: RunSpec) -> None:
    """What needs two keys at once; each number's own range is checked as it is read (ranges.py)."""
    n, batch = spec.data.num_train, spec.train.batch_size
    # Training drops the last incomplete batch: fewer images than one batch would train on nothing.
    if 0 < n < batch:
        raise SpecError(f"key 'data.num_train': {n} training images make no batch of train.batch_size {batch} "
                        f"(the last incomplete batch is dropped); expected at least {batch}")
