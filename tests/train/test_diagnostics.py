"""Per-point diagnostics against hand computations: which BN is 'the' γ, entropy and norm of tiny
features, the gradient norm, and the per-epoch accumulation (hooks, reset, eval mode)."""

import math

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from imacsr_cli.models.registry import Point
from imacsr_cli.train.diagnostics import Diagnostics, feature_stats, grad_norm2, producing_norm


def test_producing_norm_is_the_last_bn_outside_the_shortcut():
    down = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8))
    block = BasicBlock(4, 8, stride=2, downsample=down)
    assert producing_norm(block) is block.bn2  # not downsample.1, registered after it
    stem = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
    assert producing_norm(stem) is stem[1]
    assert producing_norm(nn.Sequential(nn.Conv2d(3, 4, 1), nn.LayerNorm(4))) is None
    assert producing_norm(nn.BatchNorm2d(4, affine=False)) is None  # no γ to measure


def test_feature_stats_closed_form():
    # Two positions, C = 2. A: (0, 0) → p = (1/2, 1/2), H = ln 2 → 1 after ÷ ln 2; ‖z‖ = 0.
    # B: (ln 3, 0) → p = (3/4, 1/4), H = -(3/4 ln 3/4 + 1/4 ln 1/4); ‖z‖ = ln 3.
    z = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])
    h_b = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)
    entropy, norm = feature_stats(z)
    assert entropy.item() == pytest.approx((1.0 + h_b) / 2, abs=1e-6)
    assert norm.item() == pytest.approx(math.log(3.0) / 2, abs=1e-6)
    # Shrinking the features raises the entropy towards 1 (specs/method.md §4).
    assert feature_stats(z * 0.01)[0].item() > entropy.item()


def test_grad_norm2_is_the_sum_of_squares_of_every_gradient():
    a = nn.Parameter(torch.tensor([1.0, 2.0]))
    b = nn.Parameter(torch.tensor([[3.0]]))
    c = nn.Parameter(torch.tensor([5.0]))  # no gradient: left out
    (a * torch.tensor([1.0, -2.0])).sum().backward()  # ∂/∂a = (1, -2)
    (b * 4.0).sum().backward()  # ∂/∂b = 4
    assert grad_norm2([a, b, c]).item() == pytest.approx(1 + 4 + 16)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2))
        self.head = nn.Conv2d(2, 1, 1)

    def forward(self, x):
        return self.head(self.a(x))


def test_epoch_values_are_the_means_over_the_epochs_steps_and_reset():
    torch.manual_seed(0)
    net = _Net().train()
    diag = Diagnostics(net, [Point("a", "a", 2, 1)], torch.device("cpu"))
    xs = [torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)]
    ent, nrm, g2 = [], [], []
    for x in xs:
        net.zero_grad()
        z = net.a(x)  # the same forward the hook sees (BN in training mode: batch statistics)
        e, n = feature_stats(z)
        ent.append(e.item())
        nrm.append(n.item())
        net.zero_grad()
        net(x).sum().backward()
        g2.append(sum(float((p.grad ** 2).sum()) for p in net.parameters()))
        diag.after_backward(net.parameters())
    values = diag.epoch_values()
    # the manual forward of net.a above also ran the hook: every step was seen twice, same values
    assert values["diag/entropy/a"] == pytest.approx(sum(ent) / 2, rel=1e-5)
    assert values["diag/feature_norm/a"] == pytest.approx(sum(nrm) / 2, rel=1e-5)
    assert values["diag/grad_norm2"] == pytest.approx(sum(g2) / 2, rel=1e-5)
    assert values["diag/steps"] == 2.0
    assert values["diag/gamma_norm/a"] == pytest.approx(float(net.a[1].weight.detach().norm()))
    # Read once, then empty until the next epoch's steps; evaluation passes are not counted.
    net.eval()
    net(xs[0])
    again = diag.epoch_values()
    assert "diag/entropy/a" not in again and "diag/grad_norm2" not in again and "diag/gamma_norm/a" in again


def test_an_overflowed_fp16_step_is_not_counted():
    p = nn.Parameter(torch.tensor([1.0]))
    diag = Diagnostics(nn.Identity(), [], torch.device("cpu"))
    p.grad = torch.tensor([float("inf")])
    diag.after_backward([p])
    p.grad = torch.tensor([3.0])
    diag.after_backward([p])
    values = diag.epoch_values()
    assert values["diag/grad_norm2"] == pytest.approx(9.0) and values["diag/steps"] == 2.0
