"""Every metric name a user reads or a program stores, defined once."""

from __future__ import annotations

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


# Loss terms of the train split (events.jsonl ``train``; eq. (4)).
LOSS = "loss"  # the total L_T
CE = "ce"  # cross-entropy of the segmentation head
MI_PREFIX = "mi/"  # mutual-information term at a point: mi/<point>
NE_PREFIX = "ne/"  # negative-entropy term at a point: ne/<point>


def mi(point: str) -> str:
    return MI_PREFIX + point


def ne(point: str) -> str:
    return NE_PREFIX + point
