"""Small fake trees in the real on-disk layouts (`imacsr data fake`), for tests and dry runs.

Pixels are synthetic: street scenes from synthetic.py's renderer (CamVid's 11 classes), with their
labels rewritten in each dataset's own raw encoding, plus void/ignored ids so that the mapping to
255 is exercised. File names, folders, modes and bit depths are the real ones:

- cityscapes: leftImg8bit/ and gtFine/ for train, val (``n`` images each) and test (1 image, labels
  nearly all 0 as in the real test set); every gtFine file (labelIds "L", color RGBA,
  instanceIds 16-bit, polygons.json) so the tree also loads in torchvision.
- camvid: layout "segnet" (six folders + train/val/test.txt with /SegNet/CamVid/ paths; stems are
  placed by their SegNet split) or "full" (701_StillsRaw_full/<stem>.png,
  LabeledApproved_full/<stem>_L.png colour labels, label_colors.txt). The same seed gives the same
  label content in both layouts.
- synthiasf: SEQ1..SEQ3/{RGBLeft,GTLeft,GTLeftDebug}/<7 digits>.png, GTLeft 8- or 16-bit RGB with
  the id in R and an instance-like value in G; every 4th RGBLeft image is RGBA.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imacsr_cli.errors import DataError

DATASETS = ("cityscapes", "camvid", "synthiasf")
DEFAULT_N = {"cityscapes": 4, "camvid": 24, "synthiasf": 24}  # cityscapes: per split
DEFAULT_SIZE = {"cityscapes": (128, 64), "camvid": (128, 96), "synthiasf": (128, 72)}  # (W, H)
MAX_N = 360  # CamVid's frame-name slots stay inside the real SegNet frame ranges up to here

# CamVid/synthetic class (0..10) → raw ids of the dataset; each image picks one per class, so
# a class may show up as an ignored raw id (Cityscapes parking, SYNTHIA road lines...).
SKY, BUILDING, POLE, ROAD, SIDEWALK, TREE, SIGN, FENCE, CAR, PEDESTRIAN, CYCLIST = range(11)
CITYSCAPES_IDS = {SKY: (23,), BUILDING: (11, 11, 12, 15), POLE: (17, 17, 18), ROAD: (7, 7, 9), SIDEWALK: (8, 8, 22),
                  TREE: (21,), SIGN: (20, 19), FENCE: (13, 13, 14), CAR: (26, 26, 27, 28, 29, 31), PEDESTRIAN: (24,),
                  CYCLIST: (33, 32, 25)}
SYNTHIA_IDS = {SKY: (11,), BUILDING: (3, 3, 4), POLE: (6,), ROAD: (1, 1, 20), SIDEWALK: (2, 2, 10), TREE: (9,),
               SIGN: (8, 7, 22), FENCE: (5,), CAR: (14, 14, 15, 16, 17, 21), PEDESTRIAN: (12,), CYCLIST: (19, 13, 18)}
CITYSCAPES_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt", "lindau"), "test": ("berlin",)}
# (sequence, SegNet split, frame format, first frame, step): real CamVid frame names, cycled.
CAMVID_SLOTS = (
    ("0001TP", "train", "{:06d}", 6690, 30),
    ("0016E5", "val", "{:05d}", 7959, 2),
    ("0001TP", "test", "{:06d}", 8550, 30),
    ("0006R0", "train", "f{:05d}", 930, 30),
    ("Seq05VD", "test", "f{:05d}", 0, 30),
    ("0016E5", "train", "{:05d}", 390, 30),
)


@dataclass(frozen=True)
class FakeTree:
    dataset: str
    root: Path
    layout: str
    images: int  # image/label pairs written
    files: int  # every file written


def write_fake(
    dataset: str,
    out: Path,
    n: int = 0,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    layout: str = "segnet",
    bits: int = 8,
) -> FakeTree:
    """Write a fake tree of `dataset` into the empty (or new) folder `out`; size is (W, H)."""
    if dataset not in DATASETS:
        raise DataError(f"fake: unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    n = n or DEFAULT_N[dataset]
    w, h = size or DEFAULT_SIZE[dataset]
    if not 1 <= n <= MAX_N:
        raise DataError(f"fake: --n {n}: expected 1..{MAX_N}")
    if w < 8 or h < 8:
        raise DataError(f"fake: --size {w}x{h}: expected at least 8x8")
    if seed < 0:
        raise DataError(f"fake: --seed {seed}: expected a seed >= 0")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"fake: {out} exists and is not an empty folder (refusing to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out, seed, h, w)
    if dataset == "cityscapes":
        writer.cityscapes(n)
        layout = "fine"
    elif dataset == "camvid":
        if layout not in ("segnet", "full"):
            raise DataError(f"fake: --layout {layout!r}: expected segnet or full")
        writer.camvid(n, layout)
    else:
        if bits not in (8, 16):
            raise DataError(f"fake: --bits {bits}: expected 8 or 16")
        writer.synthia(n, bits)
        layout = f"sf, {bits}-bit GTLeft"
    return FakeTree(dataset, out, layout, writer.pairs, writer.files)


class _Writer:
    def __init__(self, root: Path, seed: int, h: int, w: int):
        self.root, self.seed, self.h, self.w = root, seed, h, w
        self.pairs = 0
        self.files = 0

    # ---- content ------------------------------------------------------------------------------
    def scene(self, index: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        """Image uint8 (H, W, 3), CamVid label 0..10 with some void (11), and a per-image generator."""
        from imacsr_cli.data.synthetic import render

        img, lab = render(self.seed * 1_000_003 + index, "train", self.h, self.w)
        rng = np.random.default_rng((self.seed, index, 7))
        lab = lab.copy()
        # A void patch (unlabelled pixels exist in every real dataset).
        y0, x0 = rng.integers(0, self.h // 2), rng.integers(0, self.w // 2)
        lab[y0 : y0 + max(2, self.h // 8), x0 : x0 + max(2, self.w // 8)] = 11
        return (img * 255).round().astype(np.uint8), lab, rng

    @staticmethod
    def remap(lab: np.ndarray, table: dict[int, tuple[int, ...]], void: int, rng: np.random.Generator) -> np.ndarray:
        lut = np.array([rng.choice(table[c]) for c in range(11)] + [void], dtype=np.int64)
        return lut[lab]

    def save(self, path: Path, array: np.ndarray) -> None:
        """uint8 (H, W) → "L", (H, W, 3) → RGB, (H, W, 4) → RGBA; uint16 (H, W) → 16-bit gray."""
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)
        self.files += 1

    def text(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.files += 1

    # ---- datasets -----------------------------------------------------------------------------
    def cityscapes(self, n: int) -> None:
        from imacsr_cli.data.cityscapes import class_table

        colours = np.zeros((256, 4), np.uint8)
        for _, cid, _, colour in class_table():
            if cid >= 0:
                colours[cid] = (*colour, 255)
        index = 0
        for split, count in (("train", n), ("val", n), ("test", 1)):
            cities = CITYSCAPES_CITIES[split]
            for i in range(count):
                city = cities[i % len(cities)]
                stem = f"{city}_{i // len(cities):06d}_{19 + index:06d}"
                img, lab, rng = self.scene(index)
                ids = self.remap(lab, CITYSCAPES_IDS, 0, rng)
                ids[-max(1, self.h // 16) :] = 1  # ego vehicle along the bottom
                if split == "test":
                    ids[:] = 0  # test labels are not public
                ids = ids.astype(np.uint8)
                gt = self.root / "gtFine" / split / city
                self.save(self.root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", img)
                self.save(gt / f"{stem}_gtFine_labelIds.png", ids)
                self.save(gt / f"{stem}_gtFine_color.png", colours[ids])
                instances = np.where(ids >= 24, ids.astype(np.uint16) * 1000 + (index % 3), ids).astype(np.uint16)
                self.save(gt / f"{stem}_gtFine_instanceIds.png", instances)
                polygons = {"imgHeight": self.h, "imgWidth": self.w, "objects": []}
                self.text(gt / f"{stem}_gtFine_polygons.json", json.dumps(polygons))
                self.pairs += 1
                index += 1

    def camvid(self, n: int, layout: str) -> None:
        from imacsr_cli.data.camvid import FULL_CLASSES

        members: dict[int, list[tuple[int, int, int]]] = {}
        for _, colour, group in FULL_CLASSES:
            members.setdefault(group, []).append(colour)
        lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for i in range(n):
            seq, group, fmt, first, step = CAMVID_SLOTS[i % len(CAMVID_SLOTS)]
            stem = f"{seq}_{fmt.format(first + step * (i // len(CAMVID_SLOTS)))}"
            img, lab, rng = self.scene(i)
            if layout == "segnet":
                self.save(self.root / group / f"{stem}.png", img)
                self.save(self.root / f"{group}annot" / f"{stem}.png", lab.astype(np.uint8))
                lists[group].append(f"/SegNet/CamVid/{group}/{stem}.png /SegNet/CamVid/{group}annot/{stem}.png")
            else:
                # Each class of this image is drawn in one of the colours grouped into it.
                pick = np.random.default_rng((self.seed, i, 11))
                palette = np.array([members[c][pick.integers(len(members[c]))] for c in range(12)], np.uint8)
                self.save(self.root / "701_StillsRaw_full" / f"{stem}.png", img)
                self.save(self.root / "LabeledApproved_full" / f"{stem}_L.png", palette[lab])
            self.pairs += 1
        if layout == "segnet":
            for group, lines in lists.items():
                self.text(self.root / f"{group}.txt", "".join(line + "\n" for line in lines))
        else:
            self.text(self.root / "label_colors.txt", "".join(f"{r} {g} {b}\t{name}\n" for name, (r, g, b), _ in FULL_CLASSES))

    def synthia(self, n: int, bits: int) -> None:
        from imacsr_cli.data.synthia import PALETTE

        palette = np.array(PALETTE, np.uint8)
        sequences = max(1, min(3, n // 2))
        index = 0
        for s in range(sequences):
            seq = self.root / f"SEQ{s + 1}"
            for frame in range(n // sequences + (1 if s < n % sequences else 0)):
                img, lab, rng = self.scene(index)
                ids = self.remap(lab, SYNTHIA_IDS, 0, rng)
                name = f"{frame:07d}.png"
                if index % 4 == 3:
                    img = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
                self.save(seq / "RGBLeft" / name, img)
                gt = np.zeros((self.h, self.w, 3), np.int64)
                gt[..., 0] = ids
                gt[..., 1] = np.where(ids >= 12, ids * 10 + index % 5, 0)  # instance-like; not the class
                if bits == 8:
                    self.save(seq / "GTLeft" / name, gt.astype(np.uint8))
                else:
                    (seq / "GTLeft").mkdir(parents=True, exist_ok=True)
                    write_png16(seq / "GTLeft" / name, gt.astype(np.uint16))
                    self.files += 1
                self.save(seq / "GTLeftDebug" / name, palette[ids])
                self.pairs += 1
                index += 1


def write_png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one): uint16 (H, W, 3), big-endian rows."""
    h, w, channels = array.shape
    if channels != 3 or array.dtype != np.uint16:
        raise ValueError("write_png16 expects uint16 (H, W, 3)")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = np.ascontiguousarray(array.astype(">u2").reshape(h, w * 3)).view(np.uint8)  # (h, w * 6)
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    )
