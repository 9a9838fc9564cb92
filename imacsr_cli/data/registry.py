"""Dataset registry: name → class table, defaults and a builder of train/val datasets.

A dataset module registers itself with ``register(DatasetEntry(...))`` at import time;
``imacsr_cli.data`` imports every dataset module of this package, so a new dataset is a new file.

The registry and the entries are metadata (class tables, defaults, splits) and import no torch:
``spec.resolve`` and ``run-grid --plan`` read them without loading torch. A dataset module imports
torch only inside ``build`` (when the trainer asks for data), e.g. through paired.py.

Every dataset yields ``(image, label)``: image float32 (3, H, W), ImageNet-normalised; label int64
(H, W) holding training ids 0..K-1 and ``IGNORE_INDEX`` for void/unlabelled pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from imacsr_cli.errors import DataError, SpecError
from imacsr_cli.spec.runspec import DataSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch.utils.data import Dataset

IGNORE_INDEX = 255
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """What the trainer needs to know of a dataset under a given class set."""

    name: str
    classes: tuple[str, ...]  # class names in training-id order; K = len(classes)
    ignore_index: int = IGNORE_INDEX

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    # data spec (resolved) -> class table. The class set option may change K (SynthiaSF).
    info: Callable[[DataSpec], DatasetInfo]
    # (data spec, "train" | "val", root or None for synthetic) -> torch Dataset
    build: Callable[[DataSpec, str, "Path | None"], Dataset]
    # Defaults filled into the spec at resolve time: split, classes, train_size, eval_size,
    # scale_range, num_train, num_val.
    defaults: dict = field(default_factory=dict)
    splits: tuple[str, ...] = ()  # allowed split protocols
    class_sets: tuple[str, ...] = ()  # allowed class sets
    needs_root: bool = True  # False for generated data
    description: str = ""


_REGISTRY: dict[str, DatasetEntry] = {}


def register(entry: DatasetEntry) -> DatasetEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"dataset {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def _load_all() -> None:
    import imacsr_cli.data  # noqa: F401


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> DatasetEntry:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SpecError(
            f"key 'data.name': unknown dataset {name!r}; expected one of {', '.join(sorted(_REGISTRY))}"
        ) from None


def data_root(spec: DataSpec) -> Path | None:
    """The spec's data.root, else $IMACSR_DATA/<name>; None for generated datasets."""
    entry = get(spec.name)
    if not entry.needs_root:
        return None
    if spec.root:
        return Path(spec.root).expanduser()
    base = os.environ.get("IMACSR_DATA")
    if not base:
        raise DataError(
            f"dataset {spec.name!r}: no data root; set data.root in the spec or IMACSR_DATA "
            f"(the root is then $IMACSR_DATA/{spec.name})"
        )
    return Path(base).expanduser() / spec.name


def build(spec: DataSpec, split: str) -> Dataset:
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    entry = get(spec.name)
    return entry.build(spec, split, data_root(spec))


def info(spec: DataSpec) -> DatasetInfo:
    return get(spec.name).info(spec)


def pad_collate(batch: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack samples, padding smaller ones at the bottom/right: images with 0, labels with ignore.

    Padding is labelled IGNORE_INDEX, so it never counts in the loss or the metrics. Float samples
    (image, label) give (images, int64 labels); compact ones (uint8 pixels, uint8 label, box; see
    transforms.py) give (uint8 pixels, uint8 labels, boxes), the padding outside each box, where
    ``transforms.batch_to_device`` zeroes the normalised image as the float form pads it.
    """
    import torch

    h = max(sample[0].shape[-2] for sample in batch)
    w = max(sample[0].shape[-1] for sample in batch)
    compact = len(batch[0]) == 3
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w, dtype=batch[0][0].dtype)
    labels = torch.full((len(batch), h, w), IGNORE_INDEX, dtype=torch.uint8 if compact else torch.long)
    for i, (img, lab, *_) in enumerate(batch):
        images[i, :, : img.shape[-2], : img.shape[-1]] = img
        labels[i, : lab.shape[-2], : lab.shape[-1]] = lab
    if compact:
        return images, labels, torch.stack([sample[2] for sample in batch])
    return images, labels
