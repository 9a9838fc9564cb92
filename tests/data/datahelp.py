"""Helpers for the dataset tests: hand-written trees with known label content, and data specs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from imacsr_cli.data import registry
from imacsr_cli.spec.runspec import DataSpec


def png(path: Path, array: np.ndarray) -> Path:
    """uint8 (H, W) → L, (H, W, 3) → RGB, (H, W, 4) → RGBA."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path)
    return path


def rgb(h: int, w: int, value: int = 90) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def stripes(values: list[int], h: int, w: int, dtype=np.uint8) -> np.ndarray:
    """A label of horizontal bands, one per value, of equal height (h divisible by len(values))."""
    return np.repeat(np.array(values, dtype=dtype), h // len(values))[:, None].repeat(w, axis=1)


def spec(name: str, root: Path, **changes) -> DataSpec:
    """A resolved-like data spec: the dataset's defaults, tiny sizes, then `changes`."""
    entry = registry.get(name)
    base = DataSpec(name=name, root=str(root), **entry.defaults)
    return dataclasses.replace(base, **{"train_size": (16, 16), "eval_size": (16, 32), **changes})


def labels_of(dataset) -> dict[str, np.ndarray]:
    """stem → decoded training ids of every sample of a built dataset (no transform)."""
    return {s.stem: dataset.codec.decode(s.label) for s in dataset.samples}


def cityscapes_tree(root: Path, labels: dict[str, dict[str, np.ndarray]]) -> Path:
    """split → stem → labelIds array; images are plain grey of the label's size."""
    for split, items in labels.items():
        for stem, lab in items.items():
            city = stem.split("_")[0]
            png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb(*lab.shape[:2]))
            png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", lab)
    return root
