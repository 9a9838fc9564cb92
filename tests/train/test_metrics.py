"""Metrics against a hand-worked confusion matrix, both conventions."""

import math

import pytest
import torch

from imacsr_cli.train.metrics import ConfusionMatrix

# K = 4 classes; class 3 never appears in ground truth nor prediction (absent → left out of the mean).
# Image 1 (2×3):  gt   0 0 1      pred 0 1 1
#                      2 2 255         2 0 1      (255 ignored: its prediction does not count)
# Image 2 (1×3):  gt   0 1 1      pred 0 0 1
IMG1_GT = [[0, 0, 1], [2, 2, 255]]
IMG1_PR = [[0, 1, 1], [2, 0, 1]]
IMG2_GT = [[0, 1, 1]]
IMG2_PR = [[0, 0, 1]]


def _cm() -> ConfusionMatrix:
    cm = ConfusionMatrix(4, 255)
    cm.update(torch.tensor(IMG1_GT), torch.tensor(IMG1_PR))
    cm.update(torch.tensor(IMG2_GT), torch.tensor(IMG2_PR))
    return cm


def test_confusion_matrix_rows_are_ground_truth():
    # Counted by hand over the 8 labelled pixels.
    assert _cm().mat.tolist() == [
        [2, 1, 0, 0],  # gt 0: (0,0) img1 → 0; (0,1) img1 → 1; (0,0) img2 → 0
        [1, 2, 0, 0],  # gt 1: img1 → 1; img2 → 0, 1
        [1, 0, 1, 0],  # gt 2: img1 → 2, 0
        [0, 0, 0, 0],
    ]


def test_dataset_level_metrics():
    m = _cm().compute()["dataset"]
    # TP, FP, FN per class: c0 (2, 2, 1), c1 (2, 1, 1), c2 (1, 0, 1), c3 absent.
    iou = [2 / 5, 2 / 4, 1 / 2]
    pre = [2 / 4, 2 / 3, 1 / 1]
    rec = [2 / 3, 2 / 3, 1 / 2]
    f1 = [4 / 7, 4 / 6, 2 / 3]
    assert m["mIoU"] == pytest.approx(sum(iou) / 3)
    assert m["mPrecision"] == pytest.approx(sum(pre) / 3)
    assert m["mRecall"] == pytest.approx(sum(rec) / 3)
    assert m["mF1"] == pytest.approx(sum(f1) / 3)
    assert m["per_class"]["iou"][3] is None  # absent class: no value, not zero


def test_paper_eq13_per_image_average():
    m = _cm().compute()["paper"]
    # Image 1: c0 (TP1, FP1, FN1), c1 (1, 1, 0), c2 (1, 0, 1).  Image 2: c0 (1, 1, 0), c1 (1, 0, 1); c2 absent.
    iou0, iou1, iou2 = (1 / 3 + 1 / 2) / 2, (1 / 2 + 1 / 2) / 2, 1 / 2
    pre0, pre1, pre2 = (1 / 2 + 1 / 2) / 2, (1 / 2 + 1) / 2, 1.0
    rec0, rec1, rec2 = (1 / 2 + 1) / 2, (1 + 1 / 2) / 2, 1 / 2
    f1 = [2 * p * r / (p + r) for p, r in ((pre0, rec0), (pre1, rec1), (pre2, rec2))]
    assert m["mIoU"] == pytest.approx((iou0 + iou1 + iou2) / 3)
    assert m["mPrecision"] == pytest.approx((pre0 + pre1 + pre2) / 3)
    assert m["mRecall"] == pytest.approx((rec0 + rec1 + rec2) / 3)
    assert m["mF1"] == pytest.approx(sum(f1) / 3)


def test_class_in_ground_truth_never_predicted_scores_zero_not_absent():
    cm = ConfusionMatrix(2, 255)
    cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))
    m = cm.compute()["dataset"]
    assert m["per_class"]["precision"] == [0.5, 0.0]
    assert m["per_class"]["iou"] == [0.5, 0.0]
    assert m["mIoU"] == pytest.approx(0.25)
    assert not math.isnan(m["mF1"])
