"""TopFormer: parameter counts, output shapes, intermediate points (real hooks), backbone weights.

The checks shared with SeaFormer are in modelhelp.py; this module gives TopFormer's facts and the
checks of its own point list and checkpoint layout.
"""

from __future__ import annotations

import torch
from modelhelp import SegModelChecks

from imacsr_cli.models import registry

VARIANTS = ("tiny", "small", "base")

# Exact counts of this implementation; they equal the official hustvl/TopFormer model (backbone +
# SimpleHead) instantiated with the ADE20K configs.
PARAMS = {
    ("tiny", 150): 1_389_654,
    ("tiny", 19): 1_372_755,
    ("small", 150): 3_034_662,
    ("small", 19): 3_009_379,
    ("base", 150): 5_062_646,
    ("base", 19): 5_028_979,
}
# The spec's figures for the official code (shared/specs/models.md §2.8).
OFFICIAL = {
    ("tiny", 150): 1.39e6,
    ("tiny", 19): 1.37e6,
    ("small", 150): 3.03e6,
    ("small", 19): 3.01e6,
    ("base", 150): 5.06e6,
    ("base", 19): 5.03e6,
}


class TestTopFormer(SegModelChecks):
    name = "topformer"
    variants = VARIANTS
    default_variant = "tiny"
    params = PARAMS
    official = OFFICIAL
    stem_conv = "backbone.tpm.stem.0.c"
    backward_variant = "base"
    selection_variant = "tiny"
    selection_spacings = (1, 3, 8)
    missing_weights_variant = "tiny"
    other_variant = "base"

    def test_points_metadata_without_building(self) -> None:
        pts = registry.points("topformer", "tiny")
        names = [p.name for p in pts]
        assert names == (
            ["stem"] + [f"tpm.{i}" for i in range(1, 10)] + [f"trans.{i}" for i in range(1, 5)]
            + ["sim1", "sim2", "sim3", "head"]
        )  # fmt: skip
        assert [(p.channels, p.stride) for p in pts if p.name.startswith("trans")] == [(208, 64)] * 4
        assert [(p.channels, p.stride) for p in pts[-4:]] == [(128, 8), (128, 16), (128, 32), (128, 8)]
        for variant in VARIANTS:
            pts = registry.points("topformer", variant)
            assert len({p.name for p in pts}) == len(pts)
            assert len(pts) == (18 if variant == "tiny" else 19)

    def test_weights_load_backbone_keys(self, tmp_path) -> None:
        source = self.build("tiny", 150, seed=1)
        # A full segmentation checkpoint as mmseg saves it: nested, prefixed, with a head to ignore.
        state = {f"backbone.{k}": v for k, v in source.backbone.state_dict().items()}
        state["decode_head.conv_seg.weight"] = torch.zeros(150, 128, 1, 1)
        path = tmp_path / "topformer_tiny.pth"
        torch.save({"state_dict": state}, path)
        self.assert_backbone_loads(source, path)
