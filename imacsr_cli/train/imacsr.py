"""iMacSR: taps at M intermediate points, dimension adapters, and the total loss of eq. (4).

    L_T = L_CE + Σ_m (α_m · L_MI^m + λ_m · L_Reg^m)

- L_CE: cross-entropy of the output logits, upsampled bilinearly to the label size (eq. 1).
- L_MI^m: cross-entropy of the adapter's logits q_m(z_m), upsampled the same way (eq. 2). The adapter is
  a 1×1 conv C_m → K with bias by default (the author's "semantic class adapter"), or an FCN head.
- L_Reg^m: the mean over pixels of Σ_k p_k log p_k, p = softmax over the C_m channels of z_m (eq. 3).
  It is ≤ 0, and minimising λ·L_Reg with λ > 0 raises the channel entropy (specs/method.md §3.3).
  Variants: ``normalized`` divides by log C_m (every point then weighs alike); ``logits`` takes the
  softmax over the adapter's K logits instead of z_m (a confidence penalty, Pereyra et al. 2017).

Cross-entropies average over labelled pixels (nn.CrossEntropyLoss with ignore_index, Table III);
NE averages over every position of z_m, which carries no labels. Both are in float32 under AMP.
The terms themselves are in losses.py: they recompute their full-size intermediates in backward
instead of keeping them, with the same values and gradients as the naive form.
Adapters are trained with the model and dropped at evaluation: taps are off in eval mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from imacsr_cli import metric_names as mn
from imacsr_cli.models.registry import Point
from imacsr_cli.spec.runspec import MethodSpec
from imacsr_cli.train.losses import cross_entropy, negative_entropy


def make_adapter(kind: str, channels: int, num_classes: int) -> nn.Module:
    if kind == "conv1x1":
        return nn.Conv2d(channels, num_classes, 1, bias=True)
    if kind == "fcn":  # mmseg's FCNHead with one conv (specs/method.md §3.5)
        return nn.Sequential(
            nn.Conv2d(channels, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.1),
            nn.Conv2d(256, num_classes, 1),
        )
    raise ValueError(f"unknown adapter {kind!r}")


def per_point(value: float | list[float], m: int) -> list[float]:
    return list(value) if isinstance(value, list) else [float(value)] * m


class IMacSR(nn.Module):
    """A segmentation model with taps and adapters at its selected points.

    ``forward(x)`` returns the output logits; in training mode the captured features z_m are kept in
    ``self.features`` for ``loss()``. With no points this is conventional training.
    """

    def __init__(self, model: nn.Module, points: Sequence[Point], num_classes: int, method: MethodSpec,
                 ignore_index: int = 255):
        super().__init__()
        self.model = model
        self.points = list(points)
        self.ignore_index = ignore_index
        self.ne_mode = method.ne
        self.ce_input = method.ce_input
        m = len(self.points)
        self.alpha = per_point(method.alpha, m) if m else []
        self.lam = per_point(method.lam, m) if m else []
        self.adapters = nn.ModuleList(make_adapter(method.adapter, p.channels, num_classes) for p in self.points)
        self.features: list[torch.Tensor | None] = [None] * m
        self._hooks = [
            model.get_submodule(p.module).register_forward_hook(self._capture(i)) for i, p in enumerate(self.points)
        ]

    def _capture(self, i: int):
        def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
            if self.training:  # taps cost nothing at evaluation
                self.features[i] = output

        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_T and its terms: {"ce", "mi/<point>", "ne/<point>"} (unweighted values)."""
        ce = cross_entropy(logits, target, self.ignore_index, self.ce_input)
        terms = {mn.CE: ce}
        total = ce
        for i, (point, adapter) in enumerate(zip(self.points, self.adapters)):
            z = self.features[i]
            if z is None:
                raise RuntimeError(f"point {point.name!r} ({point.module}) produced no feature in the forward pass")
            q = adapter(z)
            mi = cross_entropy(q, target, self.ignore_index, self.ce_input)
            if self.ne_mode == "logits":
                ne = negative_entropy(q)
            else:
                ne = negative_entropy(z)
                if self.ne_mode == "normalized":
                    ne = ne / math.log(point.channels)
            terms[mn.mi(point.name)] = mi
            terms[mn.ne(point.name)] = ne
            total = total + self.alpha[i] * mi + self.lam[i] * ne
        self.features = [None] * len(self.points)
        return total, terms
