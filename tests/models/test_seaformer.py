"""SeaFormer: parameter counts, output shapes, intermediate points (real hooks), backbone weights.

The checks shared with TopFormer are in modelhelp.py; this module gives SeaFormer's facts and the
checks of its own point list and checkpoint layout.
"""

from __future__ import annotations

import torch
from modelhelp import SegModelChecks

from imacsr_cli.models import registry

VARIANTS = ("tiny", "small", "base", "large")

# Exact counts of this implementation; they equal the official fudan-zvg/SeaFormer model (backbone +
# LightHead) instantiated with the ADE20K configs.
PARAMS = {
    ("tiny", 150): 1_667_318,
    ("tiny", 19): 1_654_611,
    ("small", 150): 3_990_118,
    ("small", 19): 3_973_219,
    ("base", 150): 8_605_654,
    ("base", 19): 8_584_563,
    ("large", 150): 13_951_510,
    ("large", 19): 13_926_227,
}
# The spec's figures for the official code (shared/specs/models.md §3.7).
OFFICIAL = {
    ("tiny", 150): 1.67e6,
    ("tiny", 19): 1.65e6,
    ("small", 150): 3.99e6,
    ("small", 19): 3.97e6,
    ("base", 150): 8.61e6,
    ("base", 19): 8.58e6,
    ("large", 150): 13.95e6,
    ("large", 19): 13.93e6,
}


class TestSeaFormer(SegModelChecks):
    name = "seaformer"
    variants = VARIANTS
    default_variant = "small"
    params = PARAMS
    official = OFFICIAL
    stem_conv = "backbone.smb1.stem_block.0.c"
    backward_variant = "large"
    selection_variant = "small"
    selection_spacings = (1, 3, 9)
    missing_weights_variant = "small"
    other_variant = "small"

    def test_points_metadata_without_building(self) -> None:
        pts = registry.points("seaformer", "tiny")
        assert [p.name for p in pts] == [
            "stem", "smb1.1", "smb1.2", "smb1.3", "smb2.1", "smb2.2", "smb3.1", "smb3.2",
            "smb4.1", "trans1.1", "trans1.2", "smb5.1", "trans2.1", "trans2.2", "fuse1", "fuse2", "head",
        ]  # fmt: skip
        assert [(p.channels, p.stride) for p in pts[-6:]] == [(160, 64)] * 3 + [(64, 8), (96, 8), (96, 8)]
        large = {p.name: (p.channels, p.stride) for p in registry.points("seaformer", "large")}
        assert large["stem"] == (32, 2)
        assert large["trans1.3"] == (192, 16) and large["trans2.3"] == (256, 32) and large["trans3.3"] == (320, 64)
        assert large["fuse3"] == (192, 8)
        lengths = {v: len(registry.points("seaformer", v)) for v in VARIANTS}
        assert lengths == {"tiny": 17, "small": 19, "base": 21, "large": 23}

    def test_weights_load_imagenet_style_checkpoint(self, tmp_path) -> None:
        source = self.build("tiny", 150, seed=1)
        # The official ImageNet checkpoints hold the backbone keys (+ a linear classifier) under state_dict_ema.
        state = dict(source.backbone.state_dict())
        state["linear.weight"] = torch.zeros(1000, 160)
        path = tmp_path / "seaformer_tiny.pth"
        torch.save({"state_dict_ema": state, "epoch": 600}, path)
        self.assert_backbone_loads(source, path)
