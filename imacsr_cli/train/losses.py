"""The loss terms of eq. (4), computed without keeping their full-size intermediates for backward.

Written naively, a term materialises and keeps several full-size float32 tensors until backward:
the cross-entropy of an adapter's upsampled logits keeps the (N, K, H, W) log-softmax at label size,
and the negative entropy keeps both p and log p over the C_m channels of z_m. For the points near
the input these are the largest tensors of a training step (BENCHMARKS.md, issue 13).

Here each term is a ``torch.autograd.Function`` whose gradient is written in closed form, one
sample at a time, so that the transient full-size tensors are those of one image:

- cross-entropy: d/du = (softmax(u) − onehot(y)) / labelled pixels, with u the upsampled logits;
  it is computed in forward, where softmax(u) is at hand, and taken back through the upsampling
  (the adjoint of bilinear interpolation, ATen's own kernel) to the logits' size, the only tensor
  kept. Backward is one multiplication: nothing at label size is computed twice. All of it runs
  channels last, where ATen's bilinear kernels are vectorised over the K channels, in one image's
  label-size scratch that every image, point and step reuses (a fresh tensor of that size costs
  more in page faults on the CPU than the arithmetic done on it).
- negative entropy: d/dz_k = p_k (log p_k − Σ_j p_j log p_j) / positions, recomputed in backward
  from z_m (which the network keeps anyway) and the per-position sums of forward (1/C_m of z_m's
  size): a gradient kept from forward would be another z_m-sized tensor, the largest of all at the
  stem.

Values are those of the naive form bit for bit (the same ATen reductions); gradients agree to
rounding, 1e-5 relative (tests/train/test_losses.py, against the naive form kept there).

    cross_entropy(logits, target, ignore_index)   # CE after bilinear upsampling to the label size
    negative_entropy(z)                           # mean over positions of Σ_k p_k log p_k
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _upsample(logits: torch.Tensor, size: torch.Size, out: torch.Tensor | None = None) -> torch.Tensor:
    """Bilinear, align_corners=False (F.interpolate's kernel); into ``out`` when given."""
    if out is None:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return torch.ops.aten.upsample_bilinear2d.out(logits, list(size), False, None, None, out=out)


def _upsample_adjoint(grad: torch.Tensor, size: torch.Size, out: torch.Tensor) -> None:
    """Write into ``out`` the gradient of ``_upsample`` w.r.t. its input (of ``out``'s shape), for
    ``grad`` at the output: the kernel autograd runs, into a slice of the batch's gradient (no cat)."""
    torch.ops.aten.upsample_bilinear2d_backward.grad_input(grad, list(size), list(out.shape), False, None, None,
                                                           grad_input=out)


_scratch: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _label_size_scratch(logits: torch.Tensor, size: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's upsampled logits (1, K, H, W) channels last, and its float32 log-softmax
    (1, H, W, K): reused by every image, every point and every step, since all of them upsample to
    the same label size. On the CPU a fresh tensor of this size is a fresh mapping whose every page
    faults on first touch, which cost more than the arithmetic (BENCHMARKS.md, issue 13). Only the
    latest shape is kept; nothing in them outlives one image's forward."""
    k = logits.shape[1]
    key = (k, tuple(size), logits.dtype, logits.device)
    if key not in _scratch:
        _scratch.clear()
        _scratch[key] = (logits.new_empty((1, *size, k)).permute(0, 3, 1, 2),
                         logits.new_empty((1, *size, k), dtype=torch.float32))
    return _scratch[key]


class _UpsampledCrossEntropy(torch.autograd.Function):
    """mean over labelled pixels of -log softmax(upsample(logits))[label]; keeps only d loss/d logits."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
        # Channels last (N, H, W, K in memory): ATen's bilinear kernels are vectorised over channels
        # there (the upsampling and its adjoint run 5-7x faster on the CPU than on NCHW), and the
        # softmax runs over the contiguous last dimension.
        size = target.shape[-2:]
        void = target == ignore_index
        index = torch.where(void, 0, target).unsqueeze(-1)  # (N, H, W, 1); ignored pixels pick class 0, weighted 0
        # d loss / d log p[label] per pixel: -1 / labelled pixels, 0 where ignored (nll_loss's mean).
        weight = torch.where(void, 0.0, 1.0 / (~void).sum()).unsqueeze(-1)
        want_grad = ctx.needs_input_grad[0]
        picked = []
        grad_logits = torch.empty_like(logits, memory_format=torch.channels_last) if want_grad else None
        u, logp = _label_size_scratch(logits, size)
        for i in range(logits.shape[0]):
            x = logits[i : i + 1].contiguous(memory_format=torch.channels_last)
            _upsample(x, size, out=u)
            torch._log_softmax(u.permute(0, 2, 3, 1).float(), -1, False, out=logp)
            picked.append(logp.gather(-1, index[i : i + 1]))
            if want_grad:
                g = logp.exp_()  # softmax(u), in place: log p is no longer needed
                g.scatter_add_(-1, index[i : i + 1], torch.full_like(picked[-1], -1.0))
                g.mul_(weight[i : i + 1])
                _upsample_adjoint(g.to(u.dtype).permute(0, 3, 1, 2), size, grad_logits[i : i + 1])
        if want_grad:
            ctx.save_for_backward(grad_logits)
            ctx.logits_format = (torch.channels_last if logits.is_contiguous(memory_format=torch.channels_last)
                                 and not logits.is_contiguous() else torch.contiguous_format)
        # The same reduction (and summation order) as F.cross_entropy's over the full log-softmax.
        picked_nchw = torch.cat(picked).permute(0, 3, 1, 2)  # (N, 1, H, W): one "class", the same memory order
        # nll_loss over the picked values (one "class"), the same pixels ignored as in the labels.
        return F.nll_loss(picked_nchw, torch.where(void, ignore_index, 0), ignore_index=ignore_index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (grad_logits,) = ctx.saved_tensors
        # Returned in the logits' own memory format (the adjoint ran channels last): the layer that
        # made them takes its gradient in that format, and converting in this multiplication is one
        # pass where a channels-last result would cost that layer a copy.
        out = torch.empty_like(grad_logits, memory_format=ctx.logits_format)
        return torch.mul(grad_logits, grad.to(grad_logits.dtype), out=out), None, None


class _NegativeEntropy(torch.autograd.Function):
    """mean over positions of Σ_k p_k log p_k, p = softmax over dim 1; keeps only ``z``."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        per_pixel = torch.cat([_sum_p_log_p(z[i : i + 1]) for i in range(z.shape[0])])
        # Σ_j p_j log p_j per position is part of the gradient too: kept (1/C_m of z's size), not
        # recomputed, and bit for bit the sum backward would compute (the same kernels on the same p).
        ctx.save_for_backward(z, per_pixel)
        return per_pixel.mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        z, per_pixel = ctx.saved_tensors
        scale = grad / (z.numel() // z.shape[1])  # d mean / d per-position value
        # Written image by image into the gradient itself, with one image's log p and p reused.
        out = torch.empty_like(z, memory_format=torch.contiguous_format)
        logp = z.new_empty((1, *z.shape[1:]), dtype=torch.float32)
        p = torch.empty_like(logp)
        for i in range(z.shape[0]):
            torch._log_softmax(z[i : i + 1].float(), 1, False, out=logp)
            torch.exp(logp, out=p)
            s = per_pixel[i : i + 1].unsqueeze(1)
            if out.dtype == torch.float32:  # the product straight into the gradient, no copy
                torch.mul(p, logp.sub_(s), out=out[i : i + 1]).mul_(scale)
            else:
                out[i : i + 1] = p.mul_(logp.sub_(s)).mul_(scale)
        return out


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
