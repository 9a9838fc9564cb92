"""Per-point training diagnostics: why the NE term is or is not doing something (specs/method.md §4).

For each intermediate point z_m, per epoch (means over the epoch's steps):

- ``diag/entropy/<point>``: H/log C_m, the normalised entropy of softmax over the C_m channels of z_m,
  averaged over positions: 1 = uniform, 0 = one channel takes all. NE is met by driving it to 1.
- ``diag/feature_norm/<point>``: ‖z_m‖, the L2 norm over channels at a position, averaged over positions.
  Shrinking it raises the entropy without changing what a BN-normalised consumer computes (§4).
- ``diag/gamma_norm/<point>``: ‖γ‖₂ of the BatchNorm that produces z_m (``producing_norm``), where
  there is one; the free gauge the network can turn down.

And for the whole model: ``diag/grad_norm2``, ‖∇L_T‖² (the squared L2 norm of the gradient of the total
loss over every trainable parameter, after unscaling AMP), averaged over the epoch's steps, and
``diag/steps``, the number of steps averaged (so T = Σ steps; the paper's Theorem 1 bounds the running
mean of ‖∇L_T‖² by c/√T). The MI and NE terms themselves are the loss terms ``mi/<point>`` and
``ne/<point>`` (names in imacsr_cli/metric_names.py).

Everything accumulates in tensors on the training device; ``epoch_values()`` reads them to the host
once per epoch, so no step waits on the GPU. The feature statistics come from forward hooks of our own
(in training mode only), under no_grad on detached features: they add no graph and no gradient.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from imacsr_cli import metric_names as names
from imacsr_cli.models.registry import Point

# A BatchNorm inside one of these submodules sits on a residual shortcut, not on the branch that ends
# the block (ResNet's downsample, MobileNet-style shortcut convs).
_SHORTCUTS = ("downsample", "shortcut")


def producing_norm(module: nn.Module) -> nn.modules.batchnorm._BatchNorm | None:
    """The BatchNorm whose γ scales the point's output: the last one registered inside the point's
    module, outside a residual shortcut (ResNet BasicBlock: bn2; MobileNetV2 block: the projection BN;
    a conv-BN-ReLU stem: its BN). None when the point has no affine BatchNorm (e.g. LayerNorm only)."""
    found = None
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.affine:
            if not any(part in _SHORTCUTS for part in name.split(".")):
                found = sub
    return found


@torch.no_grad()
def feature_stats(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean normalised channel entropy H/log C, mean L2 norm over channels) of z (N, C, H, W), as
    0-d float32 tensors on z's device. One channel: entropy 0 by convention (log 1 = 0)."""
    z = z.detach().float()
    c = z.shape[1]
    logp = torch.log_softmax(z, dim=1)
    h = -(logp.exp() * logp).sum(dim=1).mean()
    entropy = h / math.log(c) if c > 1 else torch.zeros((), device=z.device)
    return entropy, torch.linalg.vector_norm(z, dim=1).mean()


def grad_norm2(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """Σ ‖g‖² over the parameters that have a gradient (unscaled: call GradScaler.unscale_ first), as a
    0-d float32 tensor on the device (no host sync)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads) if hasattr(torch, "_foreach_norm") else [g.norm() for g in grads]
    return torch.stack([n.float() for n in norms]).pow(2).sum()


class Diagnostics:
    """Device-side accumulators over one epoch; ``epoch_values()`` turns them into metric rows."""

    def __init__(self, model: nn.Module, points: list[Point], device: torch.device):
        self.points = list(points)
        self.device = device
        self.gammas = [producing_norm(model.get_submodule(p.module)) for p in self.points]
        m = len(self.points)
        # rows: entropy, feature norm; columns: points. Counts per point (a point may be skipped).
        self._feat = torch.zeros(2, m, device=device)
        self._feat_n = torch.zeros(m, device=device)
        self._grad = torch.zeros(2, device=device)  # Σ ‖∇L_T‖² over finite steps, their count
        self._steps = 0
        self._hooks = [model.get_submodule(p.module).register_forward_hook(self._hook(i))
                       for i, p in enumerate(self.points)]

    def _hook(self, i: int):
        def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
            if module.training and isinstance(output, torch.Tensor):
                entropy, norm = feature_stats(output)
                self._feat[0, i] += entropy
                self._feat[1, i] += norm
                self._feat_n[i] += 1

        return hook

    def after_backward(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Add this step's ‖∇L_T‖² (after backward and unscaling, before the optimizer step). A step whose
        fp16 gradients overflowed (GradScaler skips it) is not counted."""
        g2 = grad_norm2(parameters).to(self._grad.device)
        finite = torch.isfinite(g2)
        self._grad += torch.stack([torch.where(finite, g2, torch.zeros_like(g2)), finite.float()])
        self._steps += 1

    def epoch_values(self) -> dict[str, float]:
        """The epoch's means (one host read), then reset for the next epoch."""
        means = (self._feat / self._feat_n.clamp(min=1)).tolist() if self.points else [[], []]
        counted = self._feat_n.tolist()
        out: dict[str, float] = {}
        for i, p in enumerate(self.points):
            if counted[i]:
                out[names.diag_entropy(p.name)] = means[0][i]
                out[names.diag_feature_norm(p.name)] = means[1][i]
            gamma = self.gammas[i]
            if gamma is not None:
                out[names.diag_gamma_norm(p.name)] = float(torch.linalg.vector_norm(gamma.weight.detach().float()))
        grad_sum, grad_n = self._grad.tolist()
        if grad_n:
            out[names.DIAG_GRAD_NORM2] = grad_sum / grad_n
        if self._steps:
            out[names.DIAG_STEPS] = float(self._steps)
        self._feat.zero_()
        self._feat_n.zero_()
        self._grad.zero_()
        self._steps = 0
        return out

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
