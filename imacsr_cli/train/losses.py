"""The loss terms of eq. (4), computed without keeping their full-size intermediates for backward.

Written naively, a term materialises and keeps several full-size float32 tensors until backward:
the cross-entropy of an adapter's upsampled logits keeps the (N, K, H, W) log-softmax at label size,
and the negative entropy keeps both p and log p over the C_m channels of z_m. For the points near
the input these are the largest tensors of a training step (BENCHMARKS.md, issue 13).

Here each term is a ``torch.autograd.Function`` that keeps only its (small, or already kept) input
and recomputes the rest in backward, one sample at a time, so that the transient tensors are those
of one image. The recomputation runs the very ATen operations of the naive form, and the gradient of
the batch mean is obtained from autograd on the small per-pixel tensor, so the values and gradients
are those of the naive form (tests/train/test_losses.py compares them with the naive form kept
there as a reference).

    cross_entropy(logits, target, ignore_index)   # CE after bilinear upsampling to the label size
    negative_entropy(z)                           # mean over positions of Σ_k p_k log p_k
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _upsample(logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _picked(logp: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """log p of each pixel's label, (n, 1, H, W); ignored pixels pick class 0 (masked later)."""
    index = torch.where(target == ignore_index, 0, target).unsqueeze(1)
    return logp.gather(1, index)


def _nll_input(picked: torch.Tensor, target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``F.nll_loss`` over the picked values (one "class") with the same ignored pixels as the labels."""
    return picked, torch.where(target == ignore_index, ignore_index, 0)


class _UpsampledCrossEntropy(torch.autograd.Function):
    """mean over labelled pixels of -log softmax(upsample(logits))[label]; keeps only ``logits``."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
        size = target.shape[-2:]
        picked = torch.cat([
            _picked(F.log_softmax(_upsample(logits[i : i + 1], size).float(), dim=1), target[i : i + 1], ignore_index)
            for i in range(logits.shape[0])
        ])
        ctx.save_for_backward(logits, target, picked)
        ctx.ignore_index = ignore_index
        # The same reduction (and summation order) as F.cross_entropy's over the full log-softmax.
        return F.nll_loss(*_nll_input(picked, target, ignore_index), ignore_index=ignore_index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, target, picked = ctx.saved_tensors
        ignore_index = ctx.ignore_index
        size = target.shape[-2:]
        with torch.enable_grad():
            # d loss / d picked, exactly as nll_loss's backward gives it (-grad / labelled pixels).
            leaf = picked.detach().requires_grad_()
            (grad_picked,) = torch.autograd.grad(
                F.nll_loss(*_nll_input(leaf, target, ignore_index), ignore_index=ignore_index), leaf, grad
            )
            grads = []
            for i in range(logits.shape[0]):
                x = logits[i : i + 1].detach().requires_grad_()
                logp = F.log_softmax(_upsample(x, size).float(), dim=1)
                (g,) = torch.autograd.grad(_picked(logp, target[i : i + 1], ignore_index), x, grad_picked[i : i + 1])
                grads.append(g)
        return torch.cat(grads), None, None


class _NegativeEntropy(torch.autograd.Function):
    """mean over positions of Σ_k p_k log p_k, p = softmax over dim 1; keeps only ``z``."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        per_pixel = torch.cat([_sum_p_log_p(z[i : i + 1]) for i in range(z.shape[0])])
        ctx.save_for_backward(z)
        ctx.pixels_shape = per_pixel.shape
        return per_pixel.mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (z,) = ctx.saved_tensors
        with torch.enable_grad():
            # d mean / d per-pixel value, from autograd on the small (N, H, W) tensor.
            leaf = torch.zeros(ctx.pixels_shape, dtype=torch.float32, device=z.device, requires_grad=True)
            (grad_pixels,) = torch.autograd.grad(leaf.mean(), leaf, grad)
            grads = []
            for i in range(z.shape[0]):
                x = z[i : i + 1].detach().requires_grad_()
                (g,) = torch.autograd.grad(_sum_p_log_p(x), x, grad_pixels[i : i + 1])
                grads.append(g)
        return torch.cat(grads)


def _sum_p_log_p(z: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(z.float(), dim=1)
    return (logp.exp() * logp).sum(dim=1)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                  ce_input: str = "logits") -> torch.Tensor:
    """CE after upsampling the logits bilinearly to the label size (never downsampling labels).

    Averages over labelled pixels (``ignore_index`` is skipped), in float32 under AMP; 0/0 = NaN
    when no pixel is labelled, as ``F.cross_entropy`` gives. ``ce_input="softmax"`` reproduces the
    author's code: nn.CrossEntropyLoss applied to softmax outputs, a double softmax (specs/method.md
    §1); that variant is computed the naive way."""
    if ce_input == "softmax":
        if logits.shape[-2:] != target.shape[-2:]:
            logits = _upsample(logits, target.shape[-2:])
        return F.cross_entropy(torch.softmax(logits.float(), dim=1), target, ignore_index=ignore_index)
    if logits.shape[-2:] == target.shape[-2:]:
        return F.cross_entropy(logits.float(), target, ignore_index=ignore_index)
    return _UpsampledCrossEntropy.apply(logits, target, ignore_index)


def negative_entropy(z: torch.Tensor) -> torch.Tensor:
    """Mean over positions of Σ_k p_k log p_k with p = softmax over dim 1 (channels). In [-log C, 0]."""
    return _NegativeEntropy.apply(z)
