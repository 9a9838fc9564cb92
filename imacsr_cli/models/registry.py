"""Model registry: name → builder, variants and the ordered list of intermediate points.

A model module registers itself with ``register(ModelEntry(...))`` at import time; ``imacsr_cli.models``
imports every module of this package, so a new model is a new file and nothing else.

Intermediate points are what iMacSR supervises. Each is a submodule whose forward output is a
feature map z_m of shape (N, C, H, W); the trainer captures it with a forward hook. Points are
listed from input to output, and one position in the list is one "base distance".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from imacsr_cli.errors import SpecError


@dataclass(frozen=True)
class Point:
    """One candidate intermediate point of a model."""

    name: str  # user-facing name, e.g. "layer1.0" (what specs and grids use)
    module: str  # dotted path inside the built nn.Module, for get_submodule(); its output is NCHW
    channels: int  # C_m
    stride: int  # resolution relative to the input (1/stride)


# build(variant, num_classes, weights) -> nn.Module whose forward(x) returns logits (N, K, h, w).
# h, w may be below the input size (e.g. 1/8 for TopFormer); the trainer upsamples to the labels.
# `weights` is an optional local path to ImageNet weights for the backbone; never downloaded.
Builder = Callable[[str, int, "str | None"], nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    variants: tuple[str, ...]
    default_variant: str
    build: Builder
    points: Callable[[str], list[Point]]  # variant -> ordered candidate points (no model built)
    description: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} registered twice")
    if entry.default_variant not in entry.variants:
        raise ValueError(f"model {entry.name!r}: default variant not in {entry.variants}")
    _REGISTRY[entry.name] = entry
    return entry


def _load_all() -> None:
    # Importing the package imports every model module (see models/__init__.py).
    import imacsr_cli.models  # noqa: F401


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> ModelEntry:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SpecError(
            f"key 'model.name': unknown model {name!r}; expected one of {', '.join(sorted(_REGISTRY))}"
        ) from None


def check_variant(entry: ModelEntry, variant: str) -> str:
    """The variant itself, or an error listing the ones that exist ('' means the default)."""
    if variant == "":
        return entry.default_variant
    if variant not in entry.variants:
        raise SpecError(
            f"key 'model.variant': model {entry.name!r} has no variant {variant!r}; "
            f"expected one of {', '.join(entry.variants)}"
        )
    return variant


def build(name: str, variant: str, num_classes: int, weights: str | None = None) -> nn.Module:
    entry = get(name)
    return entry.build(check_variant(entry, variant), num_classes, weights)


def points(name: str, variant: str) -> list[Point]:
    entry = get(name)
    return entry.points(check_variant(entry, variant))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
