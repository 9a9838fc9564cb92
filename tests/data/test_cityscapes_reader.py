"""Cityscapes: torchvision's samples + the trainId table, sorted, strays ignored, broken trees named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datahelp import cityscapes_tree, png, rgb, spec, stripes

from imacsr_cli.data import registry
from imacsr_cli.data.check import check_tree
from imacsr_cli.data.cityscapes import label_lut, train_classes
from imacsr_cli.data.fake import write_fake
from imacsr_cli.errors import DataError

EXPECTED = "expected leftImg8bit/{train,val} and gtFine/{train,val} under the root"
WITH = EXPECTED.removeprefix("expected ")
# specs/datasets.md §1.3, written out independently of torchvision's table.
TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
             27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def test_label_table_is_the_official_one():
    lut = label_lut()
    assert [int(lut[i]) if i < len(lut) else 255 for i in range(256)] == [TRAIN_IDS.get(i, 255) for i in range(256)]
    assert train_classes() == ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                               "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
                               "bus", "train", "motorcycle", "bicycle")
    assert registry.info(spec("cityscapes", "/x")).num_classes == 19


def test_same_samples_and_labels_as_torchvision(tmp_path):
    from torchvision.datasets import Cityscapes

    root = tmp_path / "cs"
    write_fake("cityscapes", root, n=3, size=(32, 16))
    for split in ("train", "val"):
        ours = registry.build(spec("cityscapes", root), split)
        tv = Cityscapes(str(root), split=split, mode="fine", target_type="semantic")
        order = sorted(range(len(tv)), key=lambda i: tv.images[i])  # torchvision keeps listdir order
        assert [str(s.image) for s in ours.samples] == [tv.images[i] for i in order]
        for k, i in enumerate(order):
            tv_image, tv_target = tv[i]
            image, label = ours.load(k)
            assert np.array_equal(np.asarray(image), np.asarray(tv_image))
            expected = np.vectorize(lambda v: TRAIN_IDS.get(int(v), 255))(np.asarray(tv_target))
            assert np.array_equal(label, expected)
        assert (np.asarray(tv[0][1]) == 1).any()  # the fake has ignored ids (ego vehicle)


def test_known_histogram_and_out_of_range_values(tmp_path):
    root = cityscapes_tree(tmp_path / "cs", {
        "train": {"aachen_000000_000019": stripes([7, 26, 0, 33], 8, 16)},
        "val": {"frankfurt_000000_000294": stripes([23, 34, 24, 24], 8, 16)},
    })
    report = check_tree("cityscapes", root)
    assert report.usable, report.problems
    expected = dict.fromkeys(train_classes(), 0) | {"road": 32, "car": 32, "bicycle": 32, "sky": 32, "person": 64}
    assert report.histogram == expected
    assert report.ignored_pixels == 64  # 32 unlabeled (0) + 32 out of range (34)
    assert report.out_of_range == {"34": 32}
    assert report.split_sizes == {"train": 1, "val": 1}
    assert report.image_sizes == {"16x8": 2}
    ds = registry.build(spec("cityscapes", root, eval_size=(8, 16)), "val")
    image, label = ds[0]
    assert image.shape == (3, 8, 16) and label.dtype == torch.int64
    assert label[:, 0].tolist() == [10, 10, 255, 255, 11, 11, 11, 11]


def test_sorted_order_and_stray_files_ignored(tmp_path):
    root = cityscapes_tree(tmp_path / "cs", {
        "train": {s: stripes([7], 8, 16) for s in ("bochum_000000_000001", "aachen_000001_000019",
                                                  "aachen_000000_000019")},
        "val": {"lindau_000000_000000": stripes([7], 8, 16)},
    })
    (root / "leftImg8bit/train/aachen/.DS_Store").write_bytes(b"\0\0")
    (root / "leftImg8bit/train/README.txt").write_text("not a city")
    (root / "gtFine/train/aachen/notes.md").write_text("x")
    png(root / "gtFine/train/aachen/aachen_000000_000019_gtFine_color.png", rgb(8, 16))  # expected, not stray
    ds = registry.build(spec("cityscapes", root), "train")
    assert [s.stem for s in ds.samples] == ["aachen_000000_000019", "aachen_000001_000019", "bochum_000000_000001"]
    report = check_tree("cityscapes", root)
    assert report.usable
    assert report.stray == [str(root / "leftImg8bit/train/README.txt"),
                            str(root / "leftImg8bit/train/aachen/.DS_Store"),
                            str(root / "gtFine/train/aachen/notes.md")]
    assert report.warnings == ["3 stray files (ignored)"]


def test_missing_root_and_folders(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as err:
        registry.build(spec("cityscapes", missing), "train")
    assert str(err.value) == f"cityscapes root {missing}: does not exist (expected a directory with {WITH})"
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DataError) as err:
        registry.build(spec("cityscapes", afile), "train")
    assert str(err.value) == f"cityscapes root {afile}: is a file (expected a directory with {WITH})"

    root = cityscapes_tree(tmp_path / "cs", {"train": {"aachen_000000_000019": stripes([7], 8, 16)}})
    (root / "leftImg8bit/val").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        registry.build(spec("cityscapes", root), "train")
    assert str(err.value) == f"cityscapes root {root}: missing gtFine/val ({EXPECTED})"
    report = check_tree("cityscapes", root)
    assert not report.usable and report.problems == [str(err.value)]

    # No root in the spec: $IMACSR_DATA/cityscapes, or a one-line error.
    with pytest.raises(DataError, match="no data root; set data.root in the spec or IMACSR_DATA"):
        registry.build(spec("cityscapes", ""), "train")
    monkeypatch.setenv("IMACSR_DATA", str(tmp_path))
    with pytest.raises(DataError) as err:
        registry.build(spec("cityscapes", ""), "train")
    assert str(err.value) == (f"cityscapes root {tmp_path / 'cityscapes'}: does not exist "
                              f"(expected a directory with {WITH})")


def test_missing_label(tmp_path):
    root = cityscapes_tree(tmp_path / "cs", {
        "train": {"aachen_000000_000019": stripes([7], 8, 16), "aachen_000000_000020": stripes([7], 8, 16)},
        "val": {"lindau_000000_000000": stripes([7], 8, 16)},
    })
    label = root / "gtFine/train/aachen/aachen_000000_000020_gtFine_labelIds.png"
    label.unlink()
    image = root / "leftImg8bit/train/aachen/aachen_000000_000020_leftImg8bit.png"
    message = f"cityscapes: image {image} has no label {label}"
    with pytest.raises(DataError) as err:
        registry.build(spec("cityscapes", root), "val")
    assert str(err.value) == message
    report = check_tree("cityscapes", root)
    assert report.problems == [message] and report.unpaired == [str(image)]


def test_wrong_size_and_bad_encoding(tmp_path):
    root = cityscapes_tree(tmp_path / "cs", {
        "train": {"aachen_000000_000019": stripes([7], 8, 16)},
        "val": {"lindau_000000_000000": stripes([7], 8, 16), "lindau_000000_000001": stripes([7], 8, 16)},
    })
    small = png(root / "gtFine/val/lindau/lindau_000000_000000_gtFine_labelIds.png", stripes([7], 8, 8))
    colour = png(root / "gtFine/val/lindau/lindau_000000_000001_gtFine_labelIds.png", rgb(8, 16))
    image = root / "leftImg8bit/val/lindau/lindau_000000_000000_leftImg8bit.png"
    size_msg = f"label {small} is 8x8 but its image {image} is 16x8 (expected equal sizes)"
    mode_msg = f"label {colour}: expected an 8-bit grayscale PNG of label ids (mode L), got mode RGB"
    ds = registry.build(spec("cityscapes", root), "val")  # building reads headers of nothing: fine
    with pytest.raises(DataError) as err:
        ds[0]
    assert str(err.value) == size_msg
    with pytest.raises(DataError) as err:
        ds[1]
    assert str(err.value) == mode_msg
    report = check_tree("cityscapes", root)
    assert report.problems == [size_msg, mode_msg]

    colour.write_bytes(b"not a png at all")
    with pytest.raises(DataError) as err:
        ds[1]
    assert str(err.value).startswith(f"label {colour}: cannot read as an image (")
