"""Model registry: name → variants, ordered intermediate points, parameter counts, and a builder.

A model module registers itself with ``register(ModelEntry(...))`` at import time; ``imacsr_cli.models``
imports every public module of this package, so a new model is a new file and nothing else.

The registry and the entries are metadata and import no torch: ``spec.resolve``, grid expansion,
``run-grid --plan`` and ``imacsr models`` read them without loading torch (docs/design-notes.md).
The network itself is named by ``build``, a ``"module:function"`` path imported only when a model is
built (the shipped models keep their networks in private modules, ``_deeplab.py`` ...); a callable
works too, for a model written in one file that imports torch at the top (discovery then loads torch).

Intermediate points are what iMacSR supervises. Each is a submodule whose forward output is a
feature map z_m of shape (N, C, H, W); the trainer captures it with a forward hook. Points are
listed from input to output, and one position in the list is one "base distance".
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Union

from imacsr_cli.errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


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
Builder = Callable[[str, int, "str | None"], "nn.Module"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    variants: tuple[str, ...]
    default_variant: str
    build: Union[str, Builder]  # "package.module:function" (imported when a model is built) or a callable
    points: Callable[[str], list[Point]]  # variant -> ordered candidate points (pure: no model built)
    # variant -> (parameters without the classifier, the classifier's input channels): at K classes a
    # model has base + K * (channels + 1) parameters (a 1×1 conv with bias). Checked against the built
    # models by tests/models; lets `imacsr models` list sizes without building anything.
    parameters: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    description: str = ""

    def builder(self) -> Builder:
        if callable(self.build):
            return self.build
        module, _, attr = self.build.partition(":")
        return getattr(importlib.import_module(module), attr)

    def parameter_count(self, variant: str, num_classes: int) -> int | None:
        """Parameters of the built model at ``num_classes`` (None when the entry does not say)."""
        if variant not in self.parameters:
            return None
        base, channels = self.parameters[variant]
        return base + num_classes * (channels + 1)


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} registered twice")
    if entry.default_variant not in entry.variants:
        raise ValueError(f"model {entry.name!r}: default variant not in {entry.variants}")
    if isinstance(entry.build, str) and ":" not in entry.build:
        raise ValueError(f"model {entry.name!r}: build must be 'module:function', got {entry.build!r}")
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
    return entry.builder()(check_variant(entry, variant), num_classes, weights)


def points(name: str, variant: str) -> list[Point]:
    entry = get(name)
    return entry.points(check_variant(entry, variant))


@functools.cache
def point_names(name: str, variant: str) -> tuple[str, ...]:
    """The names of a variant's candidate points, input to output (computed once: resolve asks for
    them for every run of a grid)."""
    return tuple(p.name for p in points(name, variant))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
