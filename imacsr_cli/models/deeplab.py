"""DeepLabv3+ with a torchvision ResNet-18 backbone (specs/models.md §4): the registry entry.

Two variants:
- ``smp`` (default): the layout of segmentation_models_pytorch's DeepLabV3Plus('resnet18'), the most
  used PyTorch DeepLabv3+-R18 (§4.4). ≈12.33 M parameters at 19 classes.
- ``paper``: the paper's / TF reference layout. ≈16.61 M parameters at 19 classes.

This module is metadata (variants, points, sizes) and imports no torch; the network is _deeplab.py,
imported when a model is built.
"""

from __future__ import annotations

from imacsr_cli.models.registry import ModelEntry, Point, register

_BLOCKS = [("layer1", 64, 4), ("layer2", 128, 8), ("layer3", 256, 16), ("layer4", 512, 16)]


def points(variant: str) -> list[Point]:
    """Block outputs from input to output (§4.6): stem, 8 BasicBlocks, ASPP, decoder."""
    pts = [Point("stem", "backbone.stem", 64, 2)]
    for layer, channels, stride in _BLOCKS:
        pts += [Point(f"{layer}.{i}", f"backbone.{layer}.{i}", channels, stride) for i in (0, 1)]
    pts += [Point("aspp", "aspp", 256, 16), Point("decoder", "decoder", 256, 4)]
    return pts


register(
    ModelEntry(
        name="deeplabv3plus",
        variants=("smp", "paper"),
        default_variant="smp",
        build="imacsr_cli.models._deeplab:build",
        points=points,
        # (parameters without the classifier, its input channels); tests/models check the built model.
        parameters={"smp": (12_329_040, 256), "paper": (16_602_784, 256)},
        description="DeepLabv3+ with a ResNet-18 backbone, output stride 16",
    )
)
