"""What a dataset reader finds on disk: image/label pairs, and the files it could not pair.

A reader lists its tree in sorted order (``os.listdir`` order differs between machines) and pairs an
image with its label by name, never by position. Files that belong to no pair are kept in the scan
so that ``imacsr data check`` can show them; building a dataset ignores them, except an image
without its label, which is an error (``Scan.require_complete``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from imacsr_cli.errors import DataError

# Folder written next to the data for persisted split lists (see splits.py); readers skip it.
SPLITS_DIR = "imacsr-splits"


@dataclass(frozen=True)
class Sample:
    stem: str  # unique id in split lists, e.g. "aachen_000000_000019", "0001TP_006690", "SEQ1/0000000"
    image: Path
    label: Path
    group: str = ""  # where the tree puts it: "train"/"val"/"test" folder, or "SEQ1" ...


@dataclass
class Scan:
    """Everything a reader found under its root, in sorted order."""

    dataset: str
    root: Path
    layout: str  # e.g. "fine", "segnet", "full", "sf"
    samples: list[Sample] = field(default_factory=list)
    missing_labels: list[tuple[Path, Path]] = field(default_factory=list)  # (image, expected label)
    unpaired_labels: list[Path] = field(default_factory=list)  # labels without an image: ignored
    stray: list[Path] = field(default_factory=list)  # neither image nor label: ignored

    def require_complete(self) -> None:
        """An image without its label, or two images of one stem, make the tree unusable."""
        seen: dict[str, Path] = {}
        for s in self.samples:
            if s.stem in seen:
                raise DataError(f"{self.dataset}: stem {s.stem} appears twice: {seen[s.stem]} and {s.image}")
            seen[s.stem] = s.image
        if not self.missing_labels:
            return
        image, label = self.missing_labels[0]
        more = len(self.missing_labels) - 1
        tail = f" (and {more} more image{'s' if more > 1 else ''} without labels)" if more else ""
        raise DataError(f"{self.dataset}: image {image} has no label {label}{tail}")

    def by_stem(self) -> dict[str, Sample]:
        return {s.stem: s for s in self.samples}


def sorted_entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(sub-folders, files) of a folder, each sorted by name; the splits folder is skipped."""
    dirs: list[Path] = []
    files: list[Path] = []
    for name in sorted(os.listdir(folder)):
        if name == SPLITS_DIR:
            continue
        path = folder / name
        (dirs if path.is_dir() else files).append(path)
    return dirs, files


def pair_by_name(scan: Scan, images: Path, labels: Path, group: str, prefix: str = "") -> None:
    """Add to ``scan`` the pairs of an image folder and a label folder whose files share names: each
    PNG of ``images`` whose label ``labels/<same name>`` exists is a sample (stem ``prefix`` + image
    stem, ``group``); one without it is a missing label; a PNG label without its image is unpaired;
    anything else in either folder (sub-folders, other files) is stray."""
    names: set[str] = set()
    dirs, files = sorted_entries(images)
    scan.stray += dirs
    for path in files:
        if path.suffix.lower() != ".png":
            scan.stray.append(path)
            continue
        label = labels / path.name
        if label.is_file():
            scan.samples.append(Sample(f"{prefix}{path.stem}", path, label, group))
            names.add(path.name)
        else:
            scan.missing_labels.append((path, label))
    dirs, files = sorted_entries(labels)
    scan.stray += dirs
    for path in files:
        if path.suffix.lower() != ".png":
            scan.stray.append(path)
        elif path.name not in names:
            scan.unpaired_labels.append(path)


def require_root(dataset: str, root: Path | None, expected: str) -> Path:
    """The root as a Path, or a DataError naming it and what should be under it."""
    if root is None:
        raise DataError(f"{dataset}: no data root given (expected {expected})")
    root = Path(root).expanduser()
    if root.is_file():
        raise DataError(f"{dataset} root {root}: is a file (expected a directory with {expected})")
    if not root.is_dir():
        raise DataError(f"{dataset} root {root}: does not exist (expected a directory with {expected})")
    return root


def require_dir(dataset: str, root: Path, rel: str, expected: str) -> Path:
    path = root / rel
    if not path.is_dir():
        raise DataError(f"{dataset} root {root}: missing {rel} (expected {expected})")
    return path
