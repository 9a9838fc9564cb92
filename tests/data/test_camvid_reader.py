"""CamVid: both layouts, the 32→11 grouping, the SegNet split rule, broken trees."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from datahelp import png, rgb, spec, stripes

from imacsr_cli.data import registry
from imacsr_cli.data.camvid import CLASSES, segnet_group
from imacsr_cli.data.check import check_tree
from imacsr_cli.data.fake import write_fake
from imacsr_cli.errors import DataError

SEGNET_EXPECTED = "expected train, trainannot, val, valannot, test, testannot under the root (SegNet layout)"


def segnet_tree(root, labels: dict[str, dict[str, np.ndarray]]):
    """group → stem → annot; every one of the six folders exists."""
    for group in ("train", "val", "test"):
        (root / group).mkdir(parents=True, exist_ok=True)
        (root / f"{group}annot").mkdir(parents=True, exist_ok=True)
        for stem, lab in labels.get(group, {}).items():
            png(root / group / f"{stem}.png", rgb(*lab.shape[:2]))
            png(root / f"{group}annot" / f"{stem}.png", lab)
    return root


def test_both_layouts_give_the_same_labels_for_the_same_stems(tmp_path):
    write_fake("camvid", tmp_path / "segnet", n=12, size=(32, 24), seed=3, layout="segnet")
    write_fake("camvid", tmp_path / "full", n=12, size=(32, 24), seed=3, layout="full")
    for split in ("train", "val"):
        a = registry.build(spec("camvid", tmp_path / "segnet"), split)
        b = registry.build(spec("camvid", tmp_path / "full"), split)
        assert [s.stem for s in a.samples] == [s.stem for s in b.samples]
        for i in range(len(a)):
            (img_a, lab_a), (img_b, lab_b) = a.load(i), b.load(i)
            assert np.array_equal(lab_a, lab_b)
            assert np.array_equal(np.asarray(img_a), np.asarray(img_b))
    # The full layout really uses grouped colours (e.g. Bridge/Wall for Building), not only the 11.
    colours = {tuple(c) for p in (tmp_path / "full/LabeledApproved_full").iterdir()
               for c in np.asarray(Image.open(p)).reshape(-1, 3)}
    assert len(colours) > 12


def test_known_histogram_in_both_encodings(tmp_path):
    root = segnet_tree(tmp_path / "segnet", {
        "train": {"0001TP_006690": stripes([0, 3, 11, 12], 8, 16)},
        "test": {"Seq05VD_f00000": stripes([8, 8, 10, 11], 8, 16)},
    })
    report = check_tree("camvid", root)
    assert report.usable, report.problems
    assert report.layout == "segnet"
    assert report.histogram == dict.fromkeys(CLASSES, 0) | {"Sky": 32, "Road": 32, "Car": 64, "Bicyclist": 32}
    assert report.ignored_pixels == 96 and report.out_of_range == {"12": 32}

    full = tmp_path / "full"
    label = np.zeros((8, 16, 3), np.uint8)
    label[0:2] = (128, 128, 128)  # Sky
    label[2:4] = (0, 128, 64)  # Bridge → Building
    label[4:6] = (192, 0, 192)  # MotorcycleScooter → Bicyclist
    label[6:7] = (0, 0, 0)  # Void
    label[7:8] = (1, 2, 3)  # not a CamVid colour
    png(full / "images/0001TP_006690.png", rgb(8, 16))
    png(full / "labels/0001TP_006690_L.png", label)
    png(full / "images/0016E5_07959.png", rgb(8, 16))
    png(full / "labels/0016E5_07959_L.png", label)
    report = check_tree("camvid", full)
    assert report.usable and report.layout == "full"
    assert report.histogram == dict.fromkeys(CLASSES, 0) | {"Sky": 64, "Building": 64, "Bicyclist": 64}
    assert report.ignored_pixels == 64 and report.out_of_range == {"(1, 2, 3)": 32}


def test_segnet_rule_matches_the_segnet_frame_ranges():
    cases = {"0001TP_006690": "train", "0001TP_008520": "train", "0001TP_008550": "test", "0001TP_010380": "test",
             "0006R0_f00930": "train", "0016E5_07920": "train", "0016E5_07959": "val", "0016E5_08159": "val",
             "0016E5_08190": "train", "0016E5_00390": "train", "Seq05VD_f00000": "test"}
    assert {s: segnet_group(s) for s in cases} == cases
    with pytest.raises(DataError) as err:
        segnet_group("frame_1")
    assert str(err.value) == ("camvid: stem 'frame_1' is not a CamVid frame name "
                              "(<0001TP|0006R0|0016E5|Seq05VD>_<frame>), so its SegNet split is unknown")


def test_segnet_splits_agree_between_layouts(tmp_path):
    write_fake("camvid", tmp_path / "segnet", n=24, size=(16, 12), layout="segnet")
    write_fake("camvid", tmp_path / "full", n=24, size=(16, 12), layout="full")
    for protocol, sizes in (("segnet", (12, 8)), ("segnet-val", (12, 4)), ("paper", (21, 3))):
        stems = {}
        for layout in ("segnet", "full"):
            s = spec("camvid", tmp_path / layout, split=protocol)
            stems[layout] = [[x.stem for x in registry.build(s, part).samples] for part in ("train", "val")]
        assert stems["segnet"] == stems["full"], protocol
        assert tuple(map(len, stems["segnet"])) == sizes, protocol
    # The SegNet layout's folders are its split.
    val = registry.build(spec("camvid", tmp_path / "segnet", split="segnet-val"), "val")
    assert {s.group for s in val.samples} == {"val"}


def test_layout_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as err:
        registry.build(spec("camvid", empty), "train")
    assert str(err.value) == (
        f"camvid root {empty}: no CamVid layout found (expected train, trainannot, val, valannot, test, testannot "
        f"(SegNet layout) or <stem>.png images with <stem>_L.png colour labels (full-resolution layout) under the root)"
    )

    partial = segnet_tree(tmp_path / "partial", {"train": {"0001TP_006690": stripes([3], 4, 8)}})
    (partial / "valannot").rmdir()
    with pytest.raises(DataError) as err:
        registry.build(spec("camvid", partial), "train")
    assert str(err.value) == f"camvid root {partial}: missing valannot ({SEGNET_EXPECTED})"

    full = tmp_path / "full"
    write_fake("camvid", full, n=6, size=(16, 12), layout="full")
    label = full / "LabeledApproved_full/0001TP_006690_L.png"
    label.unlink()
    with pytest.raises(DataError) as err:
        registry.build(spec("camvid", full), "train")
    image = full / "701_StillsRaw_full/0001TP_006690.png"
    assert str(err.value) == f"camvid: image {image} has no label 0001TP_006690_L.png"


def test_bad_encodings(tmp_path):
    root = segnet_tree(tmp_path / "segnet", {
        "train": {"0001TP_006690": stripes([3], 4, 8)}, "test": {"Seq05VD_f00000": stripes([3], 4, 8)}})
    annot = png(root / "trainannot/0001TP_006690.png", rgb(4, 8))
    (root / "train/Thumbs.db").write_bytes(b"x")
    report = check_tree("camvid", root)
    assert report.problems == [f"label {annot}: expected an 8-bit grayscale PNG of label ids (mode L), got mode RGB"]
    assert report.stray == [str(root / "train/Thumbs.db")]

    full = tmp_path / "full"
    png(full / "a/0001TP_006690.png", rgb(4, 8))
    gray = png(full / "b/0001TP_006690_L.png", stripes([3], 4, 8))
    png(full / "a/Seq05VD_f00000.png", rgb(4, 8))
    png(full / "b/Seq05VD_f00000_L.png", rgb(4, 8, 0))
    report = check_tree("camvid", full)
    assert report.problems == [f"label {gray}: expected an RGB PNG of class colours, got mode L"]
