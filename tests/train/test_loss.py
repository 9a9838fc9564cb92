"""The iMacSR loss terms against hand computations on tiny tensors."""

import math

import pytest
import torch
from torch import nn

from imacsr_cli.models.registry import Point
from imacsr_cli.spec.runspec import MethodSpec
from imacsr_cli.train.imacsr import IMacSR, cross_entropy, negative_entropy


def test_cross_entropy_ignores_void_and_averages_labelled_pixels():
    # Two pixels, K = 2. Pixel 0: logits (ln 3, 0) → p = (3/4, 1/4), label 0 → -ln(3/4).
    # Pixel 1: label 255 (ignored). Mean over the one labelled pixel.
    logits = torch.tensor([[[[math.log(3.0), 5.0]], [[0.0, -5.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[0, 255]]])
    assert cross_entropy(logits, target, 255).item() == pytest.approx(-math.log(0.75), abs=1e-6)


def test_cross_entropy_upsamples_logits_to_label_size():
    # A constant 1×1 logit map upsampled to 2×2 is constant: CE = -ln softmax.
    logits = torch.tensor([[[[2.0]], [[0.0]]]])
    target = torch.tensor([[[0, 1], [1, 255]]])
    p0 = math.exp(2) / (math.exp(2) + 1)
    expected = (-math.log(p0) - 2 * math.log(1 - p0)) / 3
    assert cross_entropy(logits, target, 255).item() == pytest.approx(expected, abs=1e-6)


def test_negative_entropy_closed_form():
    # Position A: channels (0, 0) → p = (1/2, 1/2) → Σ p ln p = -ln 2.
    # Position B: channels (ln 3, 0) → p = (3/4, 1/4) → 3/4 ln 3/4 + 1/4 ln 1/4.
    z = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])  # (1, C=2, 1, 2)
    b = 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    assert negative_entropy(z).item() == pytest.approx((-math.log(2) + b) / 2, abs=1e-6)


def test_ne_gradient_step_raises_channel_entropy():
    # Minimising +λ·Σ p log p (λ > 0) must make the channel distribution less peaked (eq. 3, §3.3).
    z = torch.tensor([[[[4.0]], [[0.0]], [[-1.0]]]], requires_grad=True)
    before = -negative_entropy(z).item()
    negative_entropy(z).backward()
    with torch.no_grad():
        z2 = z - 1.0 * z.grad
    after = -negative_entropy(z2).item()
    assert after > before


class _Tiny(nn.Module):
    """conv(3→4) → relu → conv(4→K); the first two are points."""

    def __init__(self, k: int):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.head = nn.Conv2d(4, k, 1)

    def forward(self, x):
        return self.head(torch.relu(self.b(torch.relu(self.a(x)))))


@pytest.mark.parametrize("ne", ["faithful", "normalized", "logits"])
def test_total_loss_is_ce_plus_weighted_terms(ne):
    torch.manual_seed(0)
    k = 3
    model = _Tiny(k)
    points = [Point("a", "a", 4, 1), Point("b", "b", 4, 2)]
    method = MethodSpec(name="imacsr", alpha=[0.4, 0.7], lam=0.05, ne=ne)
    trainee = IMacSR(model, points, k, method, ignore_index=255).train()
    x = torch.randn(2, 3, 6, 6)
    y = torch.randint(0, k, (2, 6, 6))
    y[0, 0, 0] = 255
    logits = trainee(x)
    total, terms = trainee.loss(logits, y)

    # Independent recomputation of every term.
    za = model.a(x)
    zb = model.b(torch.relu(za))
    qa, qb = trainee.adapters[0](za), trainee.adapters[1](zb)
    ce = nn.CrossEntropyLoss(ignore_index=255)
    up = lambda t: nn.functional.interpolate(t, size=(6, 6), mode="bilinear", align_corners=False)  # noqa: E731

    def ne_of(t, c):
        p = torch.softmax(t, 1)
        v = (p * torch.log(p)).sum(1).mean()
        return v / math.log(c) if ne == "normalized" else v

    ne_a = ne_of(qa, k) if ne == "logits" else ne_of(za, 4)
    ne_b = ne_of(qb, k) if ne == "logits" else ne_of(zb, 4)
    mi_a, mi_b = ce(up(qa), y), ce(up(qb), y)
    expected = ce(up(logits), y) + 0.4 * mi_a + 0.7 * mi_b + 0.05 * (ne_a + ne_b)
    assert terms["mi/a"].item() == pytest.approx(mi_a.item(), abs=1e-5)
    assert terms["ne/b"].item() == pytest.approx(ne_b.item(), abs=1e-5)
    assert total.item() == pytest.approx(expected.item(), abs=1e-5)
    assert set(terms) == {"ce", "mi/a", "ne/a", "mi/b", "ne/b"}


def test_conventional_has_no_adapters_and_loss_is_ce():
    model = _Tiny(2)
    trainee = IMacSR(model, [], 2, MethodSpec(name="conventional", alpha=[], lam=[]))
    x, y = torch.randn(2, 3, 4, 4), torch.randint(0, 2, (2, 4, 4))
    total, terms = trainee.loss(trainee(x), y)
    assert len(trainee.adapters) == 0 and set(terms) == {"ce"}
    assert total.item() == pytest.approx(terms["ce"].item())


def test_adapters_are_dropped_at_evaluation():
    trainee = IMacSR(_Tiny(2), [Point("a", "a", 4, 1)], 2, MethodSpec()).eval()
    trainee(torch.randn(1, 3, 4, 4))
    assert trainee.features == [None]  # no tap captured: eval costs what the bare model costs
