"""`imacsr data check`: is a dataset tree usable, and what is in it.

``check_tree`` reads every pair the reader finds (images decoded, labels decoded and mapped to
training ids) and returns a ``CheckReport``; it never raises for a broken tree, the breakage is in
``problems``. A tree is usable when it has no problems, i.e. when building the train and val
datasets would succeed and every file would decode. Stray files, labels without images and label
values the class table does not know are only warnings: training ignores them.

The check writes nothing: a split that is not persisted yet is drawn and shown, not written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imacsr_cli.data import registry
from imacsr_cli.data.labels import open_image
from imacsr_cli.data.paired import Reader
from imacsr_cli.data.registry import IGNORE_INDEX
from imacsr_cli.errors import DataError, SpecError
from imacsr_cli.lazy import lazy_import
from imacsr_cli.spec.runspec import DataSpec

np = lazy_import("numpy")  # the plan's layout check (readers) decodes nothing

MAX_LISTED = 20  # problems/paths listed in full; the rest are counted


@dataclass
class CheckReport:
    dataset: str
    root: str
    layout: str = ""
    split: str = ""  # split protocol
    split_rule: str = ""
    split_file: str = ""  # '' for fixed rules (folders)
    split_file_stored: bool = False  # False: drawn by this check, written at the first training build
    split_sizes: dict[str, int] = field(default_factory=dict)  # {"train": n, "val": n}
    classes: str = ""  # class set
    class_names: list[str] = field(default_factory=list)
    images: int = 0  # image/label pairs found
    image_sizes: dict[str, int] = field(default_factory=dict)  # "WxH" → number of images
    unpaired: list[str] = field(default_factory=list)  # images without label, labels without image
    stray: list[str] = field(default_factory=list)  # files that are neither (ignored)
    histogram: dict[str, int] = field(default_factory=dict)  # class name → pixels (training ids)
    ignored_pixels: int = 0  # pixels labelled IGNORE_INDEX (void, ignored classes, unknown values)
    out_of_range: dict[str, int] = field(default_factory=dict)  # raw label value → pixels
    problems: list[str] = field(default_factory=list)  # what makes the tree unusable
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "usable": self.usable}


def readers() -> dict[str, Reader]:
    from imacsr_cli.data import camvid, cityscapes, synthia

    return {r.name: r for r in (cityscapes.READER, camvid.READER, synthia.READER)}


def options(dataset: str, split: str, classes: str) -> tuple[Reader, str, str]:
    """The reader, split protocol and class set, with the dataset's defaults; SpecError if unknown."""
    entry = registry.get(dataset)
    reader = readers().get(dataset)
    if reader is None:
        raise SpecError(f"dataset {dataset!r} is not read from disk; data check works on {', '.join(readers())}")
    split = split or entry.defaults["split"]
    classes = classes or entry.defaults["classes"]
    if split not in entry.splits:
        raise SpecError(f"dataset {dataset!r} has no split {split!r}; expected one of {', '.join(entry.splits)}")
    if classes not in entry.class_sets:
        raise SpecError(
            f"dataset {dataset!r} has no class set {classes!r}; expected one of {', '.join(entry.class_sets)}"
        )
    return reader, split, classes


def check_tree(dataset: str, root: Path, split: str = "", classes: str = "") -> CheckReport:
    reader, split, classes = options(dataset, split, classes)
    names = reader.info(DataSpec(name=dataset, classes=classes)).classes
    report = CheckReport(dataset, str(root), split=split, classes=classes, class_names=list(names))
    try:
        scan = reader.scan(Path(root))
    except DataError as exc:
        report.problems.append(str(exc))
        return report
    report.layout = scan.layout
    report.images = len(scan.samples)
    report.unpaired = [str(image) for image, _ in scan.missing_labels] + [str(p) for p in scan.unpaired_labels]
    report.stray = [str(p) for p in scan.stray]
    try:
        scan.require_complete()
        lists = reader.split(scan, split, write=False)
        report.split_rule = lists.rule
        report.split_file = str(lists.path or "")
        report.split_file_stored = lists.stored
        report.split_sizes = {"train": len(lists.train), "val": len(lists.val)}
        if lists.stored:
            unlisted = len(scan.samples) - len(set(lists.train) | set(lists.val))
            if unlisted:
                report.warnings.append(f"{unlisted} images are in neither list of {lists.path} (not used)")
        for part, stems in report.split_sizes.items():
            if not stems:
                report.problems.append(f"{dataset} root {scan.root}: the {part} set of split {split!r} is empty")
    except DataError as exc:
        report.problems.append(str(exc))

    codec = reader.codec(scan, classes)
    counts = np.zeros(256, dtype=np.int64)
    out_of_range: dict[str, int] = {}
    for sample in scan.samples:
        try:
            with open_image(sample.image) as img:
                img.load()  # decodes the whole file: a truncated image fails here, not mid-training
                size = img.size
            raw = codec.read_raw(sample.label)
        except DataError as exc:
            report.problems.append(str(exc))
            continue
        report.image_sizes[f"{size[0]}x{size[1]}"] = report.image_sizes.get(f"{size[0]}x{size[1]}", 0) + 1
        if raw.shape[:2] != (size[1], size[0]):
            report.problems.append(
                f"label {sample.label} is {raw.shape[1]}x{raw.shape[0]} but its image {sample.image} "
                f"is {size[0]}x{size[1]} (expected equal sizes)"
            )
            continue
        counts += np.bincount(codec.to_train(raw).ravel(), minlength=256)
        for value, n in codec.out_of_range(raw).items():
            out_of_range[value] = out_of_range.get(value, 0) + n

    report.histogram = {name: int(counts[i]) for i, name in enumerate(names)}
    report.ignored_pixels = int(counts[IGNORE_INDEX])
    report.out_of_range = out_of_range
    if report.images and not report.problems and not counts[: len(names)].any():
        report.problems.append(f"{dataset} root {scan.root}: no label pixel belongs to any of the {len(names)} classes")
    if len(report.problems) > MAX_LISTED:
        more = len(report.problems) - MAX_LISTED
        report.problems = report.problems[:MAX_LISTED] + [f"... and {more} more problems"]
    if scan.unpaired_labels:
        report.warnings.append(f"{len(scan.unpaired_labels)} labels without an image (ignored)")
    if scan.stray:
        report.warnings.append(f"{len(scan.stray)} stray files (ignored)")
    if out_of_range:
        report.warnings.append(
            f"{sum(out_of_range.values())} label pixels hold values outside the class table (ignored in training)"
        )
    return report
