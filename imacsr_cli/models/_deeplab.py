"""The DeepLabv3+ network (ResNet-18 backbone); its registry entry, variants and points are in
deeplab.py, which imports this module only when a model is built.

Two variants:
- ``smp`` (default): the layout of segmentation_models_pytorch's DeepLabV3Plus('resnet18'), the most
  used PyTorch DeepLabv3+-R18 (§4.4): output stride 16 with layer4 dilated, separable ASPP at rates
  12/24/36, dropout 0.5, a separable 3×3 after ASPP, one separable 3×3 in the decoder. ≈12.33 M
  parameters at 19 classes.
- ``paper``: the paper's / TF reference layout: rates 6/12/18 at OS16, plain atrous convs, dropout
  0.1, no conv after ASPP, two plain 3×3×256 decoder convs. ≈16.61 M parameters at 19 classes.

The forward returns logits at stride 4; the trainer upsamples them to the label size.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from imacsr_cli.errors import SpecError


def _conv_bn_relu(cin: int, cout: int, k: int = 1, dilation: int = 1, separable: bool = False) -> nn.Sequential:
    pad = dilation * (k // 2)
    if separable and k > 1:
        # Depthwise k×k then pointwise 1×1, no BN in between (smp's SeparableConv2d).
        convs: list[nn.Module] = [
            nn.Conv2d(cin, cin, k, padding=pad, dilation=dilation, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
        ]
    else:
        convs = [nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False)]
    return nn.Sequential(*convs, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResNet18Backbone(nn.Module):
    """torchvision ResNet-18 at output stride 16: every 3×3 conv of layer4 has stride 1, dilation 2."""

    def __init__(self) -> None:
        super().__init__()
        net = resnet18(weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.maxpool = net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        for block in self.layer4:
            for conv in (block.conv1, block.conv2):
                conv.stride, conv.dilation, conv.padding = (1, 1), (2, 2), (2, 2)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.stem(x))
        low = self.layer1(x)
        x = self.layer4(self.layer3(self.layer2(low)))
        return low, x

    def load_imagenet(self, path: str) -> None:
        """Load a torchvision resnet18 state_dict from a local file (never downloaded)."""
        if not Path(path).expanduser().is_file():
            raise SpecError(f"key 'model.weights': file not found: {path}")
        state = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        renamed = {}
        for key, value in state.items():
            key = key.removeprefix("module.").removeprefix("backbone.")
            key = key.replace("conv1.", "stem.0.", 1) if key.startswith("conv1.") else key
            key = key.replace("bn1.", "stem.1.", 1) if key.startswith("bn1.") else key
            renamed[key] = value
        own = self.state_dict()
        matched = {k: v for k, v in renamed.items() if k in own and own[k].shape == v.shape}
        if not matched:
            raise SpecError(f"key 'model.weights': {path} holds no ResNet-18 backbone weights")
        self.load_state_dict(matched, strict=False)


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates: tuple[int, int, int], separable: bool, dropout: float):
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn_relu(cin, cout, 1)] + [_conv_bn_relu(cin, cout, 3, r, separable) for r in rates]
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv_bn_relu(cin, cout, 1))
        self.project = nn.Sequential(_conv_bn_relu(5 * cout, cout, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    def __init__(self, num_classes: int, variant: str = "smp"):
        super().__init__()
        smp = variant == "smp"
        self.backbone = ResNet18Backbone()
        aspp = ASPP(512, 256, (12, 24, 36) if smp else (6, 12, 18), separable=smp, dropout=0.5 if smp else 0.1)
        # The "aspp" point is this whole block's output (ASPP, plus smp's post-ASPP separable conv).
        self.aspp = nn.Sequential(aspp, _conv_bn_relu(256, 256, 3, separable=True)) if smp else nn.Sequential(aspp)
        self.low_proj = _conv_bn_relu(64, 48, 1)
        n_convs = 1 if smp else 2
        self.decoder = nn.Sequential(
            *[_conv_bn_relu(304 if i == 0 else 256, 256, 3, separable=smp) for i in range(n_convs)]
        )
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(x)
        high = self.aspp(high)
        # smp upsamples ×4 with align_corners=True; resizing to the exact low-level size keeps
        # inputs that are not multiples of 16 working.
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=True)
        return self.classifier(self.decoder(torch.cat([high, self.low_proj(low)], dim=1)))


def build(variant: str, num_classes: int, weights: str | None = None) -> nn.Module:
    model = DeepLabV3Plus(num_classes, variant)
    if weights:
        model.backbone.load_imagenet(weights)
    return model
