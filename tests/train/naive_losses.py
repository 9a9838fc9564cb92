"""The loss terms as they were written before issue 13 (naive autograd: every intermediate is kept
for backward). The reference that tests/train/test_losses.py and benchmarks/train_step.py compare
imacsr_cli/train/losses.py against; do not "optimise" it."""

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                  ce_input: str = "logits") -> torch.Tensor:
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    logits = logits.float()
    if ce_input == "softmax":  # the author's double softmax (issue 14)
        logits = torch.softmax(logits, dim=1)
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


def negative_entropy(z: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(z.float(), dim=1)
    return (logp.exp() * logp).sum(dim=1).mean()
