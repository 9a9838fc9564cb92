"""Training/evaluation transforms: (seed, epoch, index)-deterministic, nearest labels, 255 padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from datahelp import cityscapes_tree, png, spec, stripes

from imacsr_cli.data import registry
from imacsr_cli.data.transforms import EvalTransform, TrainTransform, sample_rng


@pytest.fixture
def tree(tmp_path):
    """Three Cityscapes frames 16x32 with a textured image and labels road (7) over car (26)."""
    stems = ("aachen_000000_000001", "aachen_000000_000002", "aachen_000000_000003")
    root = cityscapes_tree(tmp_path / "cs", {"train": {s: stripes([7, 26], 16, 32) for s in stems},
                                             "val": {"lindau_000000_000001": stripes([7, 26], 16, 32)}})
    rng = np.random.default_rng(0)
    for s in stems:
        png(root / f"leftImg8bit/train/aachen/{s}_leftImg8bit.png", rng.integers(0, 256, (16, 32, 3), np.uint8))
    return root


def test_augmentation_depends_on_seed_epoch_index_only(tree):
    ds = registry.build(spec("cityscapes", tree, train_size=(12, 12), eval_size=(16, 32)), "train")
    ds.set_seed(5)
    ds.set_epoch(2)
    first = [ds[i] for i in range(3)]
    torch.manual_seed(123)
    np.random.seed(123)  # the global RNGs play no part
    again = [ds[i] for i in (2, 0, 1)]  # nor does the access order
    for (a_img, a_lab), (b_img, b_lab) in zip(first, [again[1], again[2], again[0]]):
        assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    ds.set_epoch(3)
    assert any(not torch.equal(first[i][0], ds[i][0]) for i in range(3))
    ds.set_epoch(2)
    ds.set_seed(6)
    assert any(not torch.equal(first[i][0], ds[i][0]) for i in range(3))


def test_training_labels_are_resized_nearest_and_padded_with_255(tree):
    ds = registry.build(spec("cityscapes", tree, train_size=(12, 12), eval_size=(16, 32), scale_range=(0.3, 1.7)),
                        "train")
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.shape == (3, 12, 12) and image.dtype == torch.float32
            assert label.shape == (12, 12) and label.dtype == torch.int64
            assert set(label.unique().tolist()) <= {0, 13, 255}  # road, car, padding: nothing in between

    # At scale 0.5 a 16x32 base becomes 8x16: a 12x12 crop keeps 8 rows, the other 4 are padding.
    small = registry.build(spec("cityscapes", tree, train_size=(12, 12), eval_size=(16, 32), scale_range=(0.5, 0.5),
                                hflip=False), "train")
    image, label = small[0]
    assert (label[8:] == 255).all() and (image[:, 8:] == 0).all()
    assert label[:4].eq(0).all() and label[4:8].eq(13).all()


def test_flip_only_when_asked():
    image = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    label = np.array([[0, 1, 2, 3]] * 4, np.uint8)
    no_flip = TrainTransform((4, 4), (1.0, 1.0), hflip=False, base_size=None)
    flip = TrainTransform((4, 4), (1.0, 1.0), hflip=True, base_size=None)
    flipped = 0
    for epoch in range(20):
        lab = no_flip(image, label, sample_rng(0, epoch, 0))[1]
        assert lab[0].tolist() == [0, 1, 2, 3]
        lab = flip(image, label, sample_rng(0, epoch, 0))[1]
        assert lab[0].tolist() in ([0, 1, 2, 3], [3, 2, 1, 0])
        flipped += lab[0].tolist() == [3, 2, 1, 0]
    assert 0 < flipped < 20


def test_evaluation_resize_or_native(tree):
    ds = registry.build(spec("cityscapes", tree, eval_size=(8, 8)), "val")
    image, label = ds[0]
    assert image.shape == (3, 8, 8) and label[:, 0].tolist() == [0] * 4 + [13] * 4
    native = registry.build(spec("cityscapes", tree, eval_size=(8, 8), eval_native=True), "val")
    image, label = native[0]
    assert image.shape == (3, 16, 32) and label.shape == (16, 32)
    # Normalisation: the ImageNet mean colour maps to ~0.
    mean = Image.new("RGB", (2, 2), (124, 116, 104))
    img, _ = EvalTransform((2, 2), native=True)(mean, np.zeros((2, 2), np.uint8))
    assert img.abs().max() < 0.01
