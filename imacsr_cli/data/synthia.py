"""SYNTHIA-SF (San Francisco): 2,224 left frames in SEQ1..SEQ6, class id in the red channel.

Layout::

    SEQ<k>/RGBLeft/<7 digits>.png    RGB or RGBA, 1920×1080
    SEQ<k>/GTLeft/<7 digits>.png     RGB(A), class id 0..22 in R (G/B: not used); 8- or 16-bit

Only RGBLeft and GTLeft are read (RGBRight, GTLeftDebug, DepthLeft... are ignored). The id is read
unchanged from R at the file's bit depth (Pillow would keep only the high byte of 16-bit files).

Raw ids (specs/datasets.md §3.4, from oracl4/SYNTHIASegm labels.py): 0 void, 1..19 the Cityscapes
classes in Cityscapes train-id order (road ... bicycle), 20 road lines, 21 other, 22 road works.

Class sets (``data.classes``):

- "cityscapes19" (default): ids 1..19 → 0..18, everything else (0, 20-22) ignored;
- "synthia22": ids 1..22 → 0..21, void ignored;
- "synthia23": ids 0..22 as they are (void is a class).

Split protocols (both persisted, see splits.py):

- "paper" (default): all frames pooled, seeded shuffle, 1,596 train / 628 test (for another
  number of frames, the same proportion);
- "sequence": whole sequences held out, from the last (highest number) backwards, until they
  hold at least 628/2,224 of the frames; at least one sequence stays in train.
"""

from __future__ import annotations

import re
from pathlib import Path

from imacsr_cli.lazy import lazy_import

np = lazy_import("numpy")  # loaded when an image is read, not when the dataset registers

from imacsr_cli.data.files import Scan, pair_by_name, require_root, sorted_entries
from imacsr_cli.data.labels import LabelCodec, read_red_channel
from imacsr_cli.data.paired import Reader, register_reader
from imacsr_cli.data.registry import IGNORE_INDEX, DatasetInfo
from imacsr_cli.data.splits import SplitLists, persisted, pooled_split
from imacsr_cli.errors import DataError
from imacsr_cli.spec.runspec import DataSpec

RAW_CLASSES = ("void", "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
               "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus",
               "train", "motorcycle", "bicycle", "road lines", "other", "road works")
# GTLeftDebug palette (same source); used by `imacsr data fake` only.
PALETTE = ((0, 0, 0), (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
           (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180),
           (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230),
           (119, 11, 32), (157, 234, 50), (72, 0, 98), (167, 106, 29))
# class set → the raw ids that are classes, in training-id order
CLASS_SETS: dict[str, tuple[int, ...]] = {
    "cityscapes19": tuple(range(1, 20)),
    "synthia22": tuple(range(1, 23)),
    "synthia23": tuple(range(0, 23)),
}
PAPER_TEST = (628, 2224)  # 628 of the 2,224 frames are the paper's test set
_SEQ = re.compile(r"SEQ(\d+)$")


def class_lut(classes: str) -> np.ndarray:
    lut = np.full(len(RAW_CLASSES), IGNORE_INDEX, dtype=np.uint8)
    for train_id, raw in enumerate(CLASS_SETS[classes]):
        lut[raw] = train_id
    return lut


class SynthiaSFReader(Reader):
    name = "synthiasf"
    expected = "SEQ<k>/RGBLeft and SEQ<k>/GTLeft under the root"

    def scan(self, root: Path | None) -> Scan:
        root = require_root(self.name, root, self.expected)
        seqs = sorted((int(m.group(1)), d) for d in sorted_entries(root)[0] if (m := _SEQ.match(d.name)))
        if not seqs:
            raise DataError(f"synthiasf root {root}: no SEQ<k> folders (expected {self.expected})")
        scan = Scan(self.name, root, "sf")
        for _, seq in seqs:
            for sub in ("RGBLeft", "GTLeft"):
                if not (seq / sub).is_dir():
                    raise DataError(f"synthiasf root {root}: missing {seq.name}/{sub} (expected {self.expected})")
            pair_by_name(scan, seq / "RGBLeft", seq / "GTLeft", seq.name, prefix=f"{seq.name}/")
        return scan

    def codec(self, scan: Scan, classes: str) -> LabelCodec:
        if classes not in CLASS_SETS:
            raise DataError(f"synthiasf: unknown class set {classes!r}; expected one of {', '.join(CLASS_SETS)}")
        return LabelCodec(read_red_channel, class_lut(classes))

    def split(self, scan: Scan, protocol: str, write: bool = True) -> SplitLists:
        stems = [s.stem for s in scan.samples]
        if protocol == "paper":
            return pooled_split(scan.root, self.name, stems, PAPER_TEST, write=write)
        if protocol == "sequence":
            groups = {s.stem: s.group for s in scan.samples}
            held = self._held_out_sequences(scan)
            return persisted(
                scan.root, self.name, "sequence", None, stems,
                lambda pool: ([s for s in pool if groups[s] not in held], [s for s in pool if groups[s] in held]),
                rule=f"whole sequences: test = {', '.join(sorted(held))}",
                write=write,
            )
        raise DataError(f"synthiasf: unknown split {protocol!r}; expected paper or sequence")

    def _held_out_sequences(self, scan: Scan) -> set[str]:
        counts: dict[str, int] = {}
        for s in scan.samples:
            counts[s.group] = counts.get(s.group, 0) + 1
        order = sorted(counts, key=lambda g: int(g[3:]))
        if len(order) < 2:
            raise DataError(f"synthiasf root {scan.root}: the sequence split needs at least two SEQ<k> folders")
        held: set[str] = set()
        total = sum(counts.values())
        for seq in reversed(order[1:]):
            held.add(seq)
            if sum(counts[g] for g in held) * PAPER_TEST[1] >= PAPER_TEST[0] * total:
                break
        return held

    def info(self, spec: DataSpec) -> DatasetInfo:
        classes = spec.classes or "cityscapes19"
        if classes not in CLASS_SETS:
            raise DataError(f"synthiasf: unknown class set {classes!r}; expected one of {', '.join(CLASS_SETS)}")
        return DatasetInfo(self.name, tuple(RAW_CLASSES[i] for i in CLASS_SETS[classes]))


READER = SynthiaSFReader()

register_reader(
    READER,
    split="paper",
    classes="cityscapes19",
    train_size=(512, 1024),
    splits=("paper", "sequence"),
    class_sets=tuple(CLASS_SETS),
    description="SYNTHIA-SF, SEQ1-6 left camera; paper split 1,596/628; 19, 22 or 23 classes",
)
