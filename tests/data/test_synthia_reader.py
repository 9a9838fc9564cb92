"""SYNTHIA-SF: id in R at 8 or 16 bits, the three class sets, both splits, broken trees."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datahelp import png, rgb, spec, stripes

from imacsr_cli.data import registry
from imacsr_cli.data.check import check_tree
from imacsr_cli.data.fake import write_fake, write_png16
from imacsr_cli.errors import DataError

EXPECTED = "expected SEQ<k>/RGBLeft and SEQ<k>/GTLeft under the root"
RAW = [0, 1, 19, 20, 22, 11, 3, 21]  # one band of each, 2 rows per band
BY_SET = {  # the training id of each band, per class set (specs/datasets.md §3.4, §3.7)
    "cityscapes19": [255, 0, 18, 255, 255, 10, 2, 255],
    "synthia22": [255, 0, 18, 19, 21, 10, 2, 20],
    "synthia23": [0, 1, 19, 20, 22, 11, 3, 21],
}


def gt(raw: list[int], h: int, w: int, bits: int, green: int = 0) -> np.ndarray:
    dtype = np.uint8 if bits == 8 else np.uint16
    out = np.zeros((h, w, 3), dtype)
    out[..., 0] = stripes(raw, h, w, dtype)
    out[..., 1] = green  # instance-like: must not leak into the class
    return out


def sf_tree(root, frames: dict[str, int], bits: int = 8, raw: list[int] = RAW):
    """SEQ name → number of frames; every GT is the RAW stripes."""
    for seq, count in frames.items():
        for i in range(count):
            png(root / seq / "RGBLeft" / f"{i:07d}.png", rgb(16, 8))
            path = root / seq / "GTLeft" / f"{i:07d}.png"
            if bits == 8:
                png(path, gt(raw, 16, 8, 8, green=7))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_png16(path, gt(raw, 16, 8, 16, green=3000))
    return root


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("classes", list(BY_SET))
def test_class_sets_at_both_bit_depths(tmp_path, bits, classes):
    root = sf_tree(tmp_path / "sf", {"SEQ1": 2}, bits)
    ds = registry.build(spec("synthiasf", root, classes=classes), "train")
    _, label = ds.load(0)
    assert label[::2, 0].tolist() == BY_SET[classes]
    assert registry.info(spec("synthiasf", root, classes=classes)).num_classes == int(classes[-2:])
    report = check_tree("synthiasf", root, classes=classes)
    assert report.usable and report.out_of_range == {}
    assert sum(report.histogram.values()) == 2 * 16 * sum(v != 255 for v in BY_SET[classes])


def test_sixteen_bit_values_are_read_whole(tmp_path):
    # Pillow would read the high byte: 21 → 0, 300 → 1. The reader keeps the 16-bit value.
    root = sf_tree(tmp_path / "sf", {"SEQ1": 2}, bits=16, raw=[21, 300])
    report = check_tree("synthiasf", root, classes="synthia23")
    assert report.histogram["other"] == 2 * 8 * 8
    assert report.out_of_range == {"300": 2 * 8 * 8}
    assert report.warnings == ["128 label pixels hold values outside the class table (ignored in training)"]


def test_fake_trees_at_8_and_16_bits_decode_equal(tmp_path):
    write_fake("synthiasf", tmp_path / "b8", n=6, size=(32, 18), bits=8)
    write_fake("synthiasf", tmp_path / "b16", n=6, size=(32, 18), bits=16)
    for split in ("train", "val"):
        a = registry.build(spec("synthiasf", tmp_path / "b8", classes="synthia23"), split)
        b = registry.build(spec("synthiasf", tmp_path / "b16", classes="synthia23"), split)
        assert [s.stem for s in a.samples] == [s.stem for s in b.samples]
        for i in range(len(a)):
            assert np.array_equal(a.load(i)[1], b.load(i)[1])
    header = (tmp_path / "b16/SEQ1/GTLeft/0000000.png").read_bytes()[24:26]
    assert tuple(header) == (16, 2)  # really 16-bit RGB
    image, _ = a.load(0)
    assert image.mode == "RGB"  # RGBA frames (every 4th in the fake) are converted


def test_paper_and_sequence_splits(tmp_path):
    root = sf_tree(tmp_path / "sf", {"SEQ1": 10, "SEQ2": 6, "SEQ10": 3, "SEQ3": 3})
    paper = [registry.build(spec("synthiasf", root), p).samples for p in ("train", "val")]
    assert (len(paper[0]), len(paper[1])) == (16, 6)  # round(22 * 628 / 2224) = 6
    assert (root / "imacsr-splits/synthiasf-paper-seed0.json").is_file()

    seq = [registry.build(spec("synthiasf", root, split="sequence"), p).samples for p in ("train", "val")]
    # Held out from the last sequence back until >= 628/2224 of 22 frames (6.2): SEQ10, SEQ3, SEQ2.
    assert {s.group for s in seq[0]} == {"SEQ1"} and {s.group for s in seq[1]} == {"SEQ2", "SEQ3", "SEQ10"}
    body = json.loads((root / "imacsr-splits/synthiasf-sequence.json").read_text())
    assert body["seed"] is None and body["rule"] == "whole sequences: test = SEQ10, SEQ2, SEQ3"
    assert seq[1][0].stem == "SEQ2/0000000"

    one = sf_tree(tmp_path / "one", {"SEQ1": 3})
    with pytest.raises(DataError) as err:
        registry.build(spec("synthiasf", one, split="sequence"), "train")
    assert str(err.value) == f"synthiasf root {one}: the sequence split needs at least two SEQ<k> folders"


def test_broken_trees(tmp_path):
    empty = tmp_path / "empty"
    (empty / "RGBLeft").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        registry.build(spec("synthiasf", empty), "train")
    assert str(err.value) == f"synthiasf root {empty}: no SEQ<k> folders ({EXPECTED})"

    root = sf_tree(tmp_path / "sf", {"SEQ1": 4, "SEQ2": 2})
    (root / "SEQ3/RGBLeft").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        registry.build(spec("synthiasf", root), "train")
    assert str(err.value) == f"synthiasf root {root}: missing SEQ3/GTLeft ({EXPECTED})"
    (root / "SEQ3/RGBLeft").rmdir()
    (root / "SEQ3").rmdir()

    (root / "SEQ2/GTLeft/0000001.png").unlink()
    image, label = root / "SEQ2/RGBLeft/0000001.png", root / "SEQ2/GTLeft/0000001.png"
    with pytest.raises(DataError) as err:
        registry.build(spec("synthiasf", root), "train")
    assert str(err.value) == f"synthiasf: image {image} has no label {label}"
    png(label, stripes([1], 16, 8))  # grayscale: not the R-channel encoding
    not_png = root / "SEQ1/GTLeft/0000000.png"
    not_png.write_bytes(b"GIF89a" + bytes(40))
    (root / "SEQ1/GTLeftDebug").mkdir()  # other SYNTHIA folders are not stray
    (root / "SEQ1/RGBLeft/desktop.ini").write_text("x")
    report = check_tree("synthiasf", root)
    assert report.problems == [
        f"label {not_png}: not a PNG file",
        f"label {label}: expected an 8- or 16-bit RGB(A) PNG with the class id in the red channel, "
        f"got 8-bit grayscale",
    ]
    assert report.stray == [str(root / "SEQ1/RGBLeft/desktop.ini")]
