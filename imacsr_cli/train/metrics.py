"""Segmentation metrics from confusion matrices, in the two conventions the reports show.

- ``dataset``: one confusion matrix summed over the whole evaluation set, then per-class IoU, precision,
  recall and F1 from its counts (the standard: Cityscapes scripts, mmseg, torchvision references).
- ``paper``: eq. (13) of the paper, the per-image average: per-class ratios computed on each image's
  own confusion matrix, averaged over images, then over classes; mF1 is the mean over classes of
  2·Pre_k·Rec_k / (Pre_k + Rec_k) with the averaged Pre_k and Rec_k, as eq. (13) writes it.

Absent classes: a class with no ground-truth and no predicted pixel (TP + FP + FN = 0) has no defined
ratio and is left out of the mean, for the whole set (dataset convention) or per image (paper
convention). A class that is present but has a zero denominator in one ratio (never predicted →
precision 0/0) scores 0 for that ratio, as sklearn's zero_division=0 does.

Rows of the confusion matrix are ground truth, columns are predictions. Pixels labelled with the
ignore index are not counted anywhere. A model with an extra void logit (``data.void_logit``, the
author's code) may predict "void": such pixels go to an extra last column, a miss (FN) of their
ground-truth class and no class's FP, as cityscapesScripts counts them; the matrix is then K × (K+1).
"""

from __future__ import annotations

import numpy as np
import torch

from imacsr_cli import metric_names as mn


class ConfusionMatrix:
    """Accumulates the dataset-level matrix and, for eq. (13), per-image TP/FP/FN counts.

    ``update`` counts on the device of its tensors (one bincount per batch, no transfer); the
    per-image matrices move to the host once, when ``mat``, ``per_image`` or ``compute()`` is first
    read after an update. Counts are integers, so where they are counted changes nothing.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, void_column: bool = False):
        self.k = num_classes
        self.ignore_index = ignore_index
        self.cols = num_classes + 1 if void_column else num_classes  # predicted class K = "void"
        self._mat = torch.zeros(num_classes, self.cols, dtype=torch.int64)
        self._per_image: list[np.ndarray] = []  # one (3, K) array of TP, FP, FN per image
        self._pending: list[torch.Tensor] = []  # (N, K, cols) per-image matrices, on their device

    def update(self, target: torch.Tensor, pred: torch.Tensor) -> None:
        """Add a batch: target and pred of shape (N, H, W) (or (H, W) for one image), on one device."""
        if target.dim() == 2:
            target, pred = target[None], pred[None]
        k, cols, n = self.k, self.cols, target.shape[0]
        pred = pred.to(target.device)
        keep = target != self.ignore_index
        image = torch.arange(n, device=target.device).view(n, 1, 1).expand_as(target)
        idx = (image[keep] * k + target[keep].to(torch.int64)) * cols + pred[keep].to(torch.int64)
        self._pending.append(torch.bincount(idx, minlength=n * k * cols).reshape(n, k, cols))

    def _flush(self) -> None:
        if not self._pending:
            return
        per_image = torch.cat([m.to(torch.int64) for m in self._pending]).cpu()  # the one transfer
        self._pending.clear()
        self._mat = self._mat + per_image.sum(0)  # not in place: both may be inference tensors
        self._per_image.extend(_tp_fp_fn(m) for m in per_image.numpy())

    @property
    def mat(self) -> torch.Tensor:
        """(K, cols) int64 counts, rows = ground truth, columns = prediction."""
        self._flush()
        return self._mat

    @property
    def per_image(self) -> list[np.ndarray]:
        self._flush()
        return self._per_image

    def compute(self) -> dict:
        """Both conventions: {"dataset": {...}, "paper": {...}}, each with means and per-class values."""
        return {mn.DATASET: dataset_metrics(self.mat.numpy()), mn.PAPER: paper_metrics(self.per_image)}


def _tp_fp_fn(mat: np.ndarray) -> np.ndarray:
    """TP, FP, FN per class of a K × K matrix, or K × (K+1) with a last column of void predictions."""
    k = mat.shape[0]
    tp = np.diag(mat).astype(np.float64)
    return np.stack([tp, mat[:, :k].sum(0) - tp, mat.sum(1) - tp])  # FP: column minus TP; FN: row minus TP


def _ratios(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class IoU, precision, recall, F1; NaN where the class is absent (TP+FP+FN = 0)."""
    present = (tp + fp + fn) > 0

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        return np.where(present, out, np.nan)

    return {
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _pack(per_class: dict[str, np.ndarray]) -> dict:
    return {
        mn.MIOU: _nanmean(per_class["iou"]),
        mn.MF1: _nanmean(per_class["f1"]),
        mn.MPRECISION: _nanmean(per_class["precision"]),
        mn.MRECALL: _nanmean(per_class["recall"]),
        "per_class": {name: [None if np.isnan(v) else float(v) for v in vals] for name, vals in per_class.items()},
    }


def dataset_metrics(mat: np.ndarray) -> dict:
    tp, fp, fn = _tp_fp_fn(mat)
    return _pack(_ratios(tp, fp, fn))


def paper_metrics(per_image: list[np.ndarray]) -> dict:
    k = per_image[0].shape[1] if per_image else 0
    if not per_image:
        return _pack({n: np.full(k, np.nan) for n in ("iou", "precision", "recall", "f1")})
    stacked = [_ratios(*counts) for counts in per_image]

    def image_mean(name: str) -> np.ndarray:
        vals = np.stack([s[name] for s in stacked])  # (N, K)
        seen = ~np.isnan(vals)
        total = np.where(seen, vals, 0.0).sum(0)
        n = seen.sum(0)
        return np.divide(total, n, out=np.full(k, np.nan), where=n > 0)

    iou, pre, rec = image_mean("iou"), image_mean("precision"), image_mean("recall")
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(pre + rec > 0, 2 * pre * rec / (pre + rec), np.where(np.isnan(pre + rec), np.nan, 0.0))
    return _pack({"iou": iou, "precision": pre, "recall": rec, "f1": f1})
