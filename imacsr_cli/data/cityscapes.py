"""Cityscapes (gtFine): the official train/val split, label ids mapped to the 19 training ids.

Layout (the root holds leftImg8bit/ and gtFine/ directly, as for torchvision)::

    leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png      8-bit RGB
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png        8-bit gray, ids 0..33

The samples and labels are those of ``torchvision.datasets.Cityscapes(root, split, mode="fine",
target_type="semantic")`` mapped through the labelId → trainId table of torchvision's
``Cityscapes.classes`` (= cityscapesScripts' labels.py): 19 classes, everything else → 255.
Unlike torchvision, files are listed in sorted order, and files that are not
``*_leftImg8bit.png`` are ignored (torchvision takes a stray ``.DS_Store`` for an image).

Split protocol "standard": train = the train folder (2,975 images), val = the val folder (500,
what the paper evaluates on). The test folder has no public labels and is not used.
"""

from __future__ import annotations

import functools
from pathlib import Path

from imacsr_cli.lazy import lazy_import

np = lazy_import("numpy")  # loaded when an image is read, not when the dataset registers

from imacsr_cli.data.files import Sample, Scan, require_dir, require_root, sorted_entries
from imacsr_cli.data.labels import LabelCodec, read_gray_ids
from imacsr_cli.data.paired import Reader, register_reader
from imacsr_cli.data.registry import IGNORE_INDEX, DatasetInfo
from imacsr_cli.data.splits import SplitLists
from imacsr_cli.errors import DataError
from imacsr_cli.spec.runspec import DataSpec

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
# The other files of gtFine: not read, not stray.
GT_SUFFIXES = ("_gtFine_color.png", "_gtFine_instanceIds.png", "_gtFine_polygons.json", "_gtFine_labelTrainIds.png")
SPLITS = ("train", "val")


@functools.lru_cache(maxsize=1)
def class_table() -> tuple[tuple[str, int, int, tuple[int, int, int]], ...]:
    """(name, label id, train id, colour) of every Cityscapes label, from torchvision."""
    from torchvision.datasets import Cityscapes  # 1 s to import: only when needed

    return tuple((c.name, c.id, c.train_id, tuple(c.color)) for c in Cityscapes.classes)


def train_classes() -> tuple[str, ...]:
    """The 19 training classes in train-id order (road, sidewalk, ..., bicycle)."""
    named = sorted((tid, name) for name, _, tid, _ in class_table() if 0 <= tid < IGNORE_INDEX)
    return tuple(name for _, name in named)


def label_lut() -> np.ndarray:
    """label id (0..33) → train id; ignored labels (trainId 255 or -1) → 255."""
    ids = [cid for _, cid, _, _ in class_table() if cid >= 0]
    lut = np.full(max(ids) + 1, IGNORE_INDEX, dtype=np.uint8)
    for _, cid, tid, _ in class_table():
        if cid >= 0 and 0 <= tid < IGNORE_INDEX:
            lut[cid] = tid
    return lut


class CityscapesReader(Reader):
    name = "cityscapes"
    expected = "leftImg8bit/{train,val} and gtFine/{train,val} under the root"

    def scan(self, root: Path | None) -> Scan:
        root = require_root(self.name, root, self.expected)
        scan = Scan(self.name, root, "fine")
        for split in SPLITS:
            images = require_dir(self.name, root, f"leftImg8bit/{split}", self.expected)
            labels = require_dir(self.name, root, f"gtFine/{split}", self.expected)
            self._scan_split(scan, split, images, labels)
        return scan

    def _scan_split(self, scan: Scan, split: str, images: Path, labels: Path) -> None:
        stems: set[str] = set()
        cities, loose = sorted_entries(images)
        scan.stray += loose
        for city in cities:
            _, files = sorted_entries(city)
            for path in files:
                if not path.name.endswith(IMAGE_SUFFIX):
                    scan.stray.append(path)
                    continue
                stem = path.name[: -len(IMAGE_SUFFIX)]
                label = labels / city.name / (stem + LABEL_SUFFIX)
                if label.is_file():
                    scan.samples.append(Sample(stem, path, label, split))
                    stems.add(stem)
                else:
                    scan.missing_labels.append((path, label))
        # Labels without an image are ignored; other gtFine files are expected and not stray.
        gt_cities, gt_loose = sorted_entries(labels)
        scan.stray += gt_loose
        for city in gt_cities:
            for path in sorted_entries(city)[1]:
                if path.name.endswith(LABEL_SUFFIX):
                    if path.name[: -len(LABEL_SUFFIX)] not in stems:
                        scan.unpaired_labels.append(path)
                elif not path.name.endswith(GT_SUFFIXES):
                    scan.stray.append(path)

    def codec(self, scan: Scan, classes: str) -> LabelCodec:
        return LabelCodec(read_gray_ids, label_lut())

    def split(self, scan: Scan, protocol: str, write: bool = True) -> SplitLists:
        if protocol != "standard":
            raise DataError(f"cityscapes: unknown split {protocol!r}; expected standard")
        train = [s.stem for s in scan.samples if s.group == "train"]
        val = [s.stem for s in scan.samples if s.group == "val"]
        return SplitLists(train, val, None, "the official train and val folders")

    def info(self, spec: DataSpec) -> DatasetInfo:
        return DatasetInfo(self.name, train_classes())


READER = CityscapesReader()

register_reader(
    READER,
    split="standard",
    classes="cityscapes19",
    train_size=(512, 1024),
    splits=("standard",),
    class_sets=("cityscapes19",),
    description="Cityscapes gtFine, 19 classes; train 2,975 / val 500 (root: leftImg8bit/, gtFine/)",
)
