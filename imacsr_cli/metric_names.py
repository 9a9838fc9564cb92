"""Every metric name a user reads or a program stores, defined once.

Values are fractions in [0, 1] (reports multiply by 100 and say so); losses are unitless; times are
seconds; throughput is images per second. The trainer writes these names into events.jsonl and
result.json, the store keys its ``metrics`` rows by them, and the reports and the CLI read them.
"""

from __future__ import annotations

# The four segmentation metrics, in the paper's column order (Table IV).
MIOU = "mIoU"
MF1 = "mF1"
MPRECISION = "mPrecision"
MRECALL = "mRecall"
MAIN = (MIOU, MF1, MPRECISION, MRECALL)

# Conventions: result.json holds both; the dataset-level one is unprefixed in the store.
DATASET = "dataset"  # one confusion matrix over the whole evaluation set
PAPER = "paper"  # eq. (13): the per-image average
PAPER_PREFIX = "paper/"
CONVENTION_PREFIX = {DATASET: "", PAPER: PAPER_PREFIX}
#: The final metric rows of both conventions: mIoU, ..., paper/mIoU, ...
FINAL_MAIN = tuple(CONVENTION_PREFIX[c] + m for c in (DATASET, PAPER) for m in MAIN)

# Per-class values (result.json ``per_class`` keys; the store keeps ``iou/<class>``).
PER_CLASS = ("iou", "f1", "precision", "recall")
IOU_PREFIX = "iou/"

# Loss terms of the train split (events.jsonl ``train``; eq. (4)).
LOSS = "loss"  # the total L_T
CE = "ce"  # cross-entropy of the segmentation head
MI_PREFIX = "mi/"  # mutual-information term at a point: mi/<point>
NE_PREFIX = "ne/"  # negative-entropy term at a point: ne/<point>

# Run-level figures of result.json (stored with split "final").
WALL_SECONDS = "wall_seconds"  # seconds, the whole run in this process (resumes count from the resume)
IMAGES_PER_S = "images_per_s"  # training images per second


def convention_name(metric: str, convention: str = DATASET) -> str:
    """The stored name of ``metric`` under ``convention``: mIoU or paper/mIoU."""
    return CONVENTION_PREFIX[convention] + metric


def mi(point: str) -> str:
    return MI_PREFIX + point


def ne(point: str) -> str:
    return NE_PREFIX + point


def iou(class_name: str) -> str:
    return IOU_PREFIX + class_name


# Per-point training diagnostics (imacsr_cli/train/diagnostics.py; stored with split "train").
DIAG_PREFIX = "diag/"
DIAG_ENTROPY_PREFIX = "diag/entropy/"  # H/log C_m over the channels of z_m, mean over positions (unitless, [0, 1])
DIAG_FEATURE_NORM_PREFIX = "diag/feature_norm/"  # ‖z_m‖₂ over channels, mean over positions (feature units)
DIAG_GAMMA_NORM_PREFIX = "diag/gamma_norm/"  # ‖γ‖₂ of the BatchNorm producing z_m, at the end of the epoch
DIAG_GRAD_NORM2 = "diag/grad_norm2"  # ‖∇L_T‖², squared L2 norm of the total loss's gradient, epoch mean
DIAG_STEPS = "diag/steps"  # optimizer steps in the epoch (T = their running sum)


def diag_entropy(point: str) -> str:
    return DIAG_ENTROPY_PREFIX + point


def diag_feature_norm(point: str) -> str:
    return DIAG_FEATURE_NORM_PREFIX + point


def diag_gamma_norm(point: str) -> str:
    return DIAG_GAMMA_NORM_PREFIX + point
