"""SeaFormer (Wan et al., ICLR 2023), variants tiny / small / base / large, with its intermediate points.

Written from the architecture spec (shared/specs/models.md §3), which describes the official
fudan-zvg/SeaFormer code: five MobileNetV2 stacks ``smb1..smb5`` (stem in smb1); the 1/8 output of
smb2 is the detail branch; squeeze-enhanced axial transformer stages follow the last stacks (after
smb4 and smb5; large also after smb3); LightHead fuses the detail feature with every transformer
output through h_sigmoid gates, then 1×1 depthwise conv-BN-ReLU, dropout, classifier. Logits at 1/8.

Module names match the official ones (``backbone.smb2.layer1``, ``backbone.trans1.transformer_blocks.0``,
``decode_head.fuse1``, ``decode_head.linear_fuse``…) so official checkpoints load by key.

This module is the registry entry (configs, points, sizes) and imports no torch; the network is
_seaformer.py, imported when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from imacsr_cli.models.registry import ModelEntry, Point, register

if TYPE_CHECKING:  # pragma: no cover
    from imacsr_cli.models._blocks import BlockCfg

ATTN_RATIO = 2  # v dim per head = ATTN_RATIO * key_dim
DROP_PATH = 0.1
POS_EMB_LEN = 16  # learned axial positional embeddings, interpolated to the actual length
DETAIL_STACK = 1  # 0-based index of the stack whose output is the 1/8 detail branch (smb2)


@dataclass(frozen=True)
class Stage:
    depth: int
    key_dim: int
    mlp_ratio: int


@dataclass(frozen=True)
class SeaFormerConfig:
    stem: int  # stem channels
    stacks: tuple[tuple[BlockCfg, ...], ...]  # smb1..smb5: (kernel, expand, out channels, stride)
    stages: tuple[Stage, ...]  # transformer stages; they follow the last len(stages) stacks
    heads: int
    head_dims: tuple[int, ...]  # LightHead embed_dims, one fusion block per transformer stage

    def stage_after(self, stack: int) -> int | None:
        """0-based transformer stage that follows stack `stack` (0-based), if any."""
        first = len(self.stacks) - len(self.stages)
        return stack - first if stack >= first else None

    def stack_channels(self, stack: int) -> int:
        return self.stacks[stack][-1][2]


# Official configs (spec §3.2, §3.3, §3.5).
VARIANTS: dict[str, SeaFormerConfig] = {
    "tiny": SeaFormerConfig(
        stem=16,
        stacks=(
            ((3, 1, 16, 1), (3, 4, 16, 2), (3, 3, 16, 1)),
            ((5, 3, 32, 2), (5, 3, 32, 1)),
            ((3, 3, 64, 2), (3, 3, 64, 1)),
            ((5, 3, 128, 2),),
            ((3, 6, 160, 2),),
        ),
        stages=(Stage(2, 16, 2), Stage(2, 24, 4)),
        heads=4, head_dims=(64, 96),
    ),
    "small": SeaFormerConfig(
        stem=16,
        stacks=(
            ((3, 1, 16, 1), (3, 4, 24, 2), (3, 3, 24, 1)),
            ((5, 3, 48, 2), (5, 3, 48, 1)),
            ((3, 3, 96, 2), (3, 3, 96, 1)),
            ((5, 4, 160, 2),),
            ((3, 6, 192, 2),),
        ),
        stages=(Stage(3, 16, 2), Stage(3, 24, 4)),
        heads=6, head_dims=(96, 128),
    ),
    "base": SeaFormerConfig(
        stem=16,
        stacks=(
            ((3, 1, 16, 1), (3, 4, 32, 2), (3, 3, 32, 1)),
            ((5, 3, 64, 2), (5, 3, 64, 1)),
            ((3, 3, 128, 2), (3, 3, 128, 1)),
            ((5, 4, 192, 2),),
            ((3, 6, 256, 2),),
        ),
        stages=(Stage(4, 16, 2), Stage(4, 24, 4)),
        heads=8, head_dims=(128, 160),
    ),
    "large": SeaFormerConfig(
        stem=32,
        stacks=(
            ((3, 3, 32, 1), (3, 4, 64, 2), (3, 4, 64, 1)),
            ((5, 4, 128, 2), (5, 4, 128, 1)),
            ((3, 4, 192, 2), (3, 4, 192, 1)),
            ((5, 4, 256, 2),),
            ((3, 6, 320, 2),),
        ),
        stages=(Stage(3, 16, 2), Stage(3, 20, 4), Stage(3, 24, 6)),
        heads=8, head_dims=(128, 160, 192),
    ),
}  # fmt: skip


def points(variant: str) -> list[Point]:
    """stem, every MV2 block, every transformer block, every fusion block, head fuse (spec §3.9, no logits)."""
    cfg = VARIANTS[variant]
    pts = [Point("stem", "backbone.smb1.stem_block", cfg.stem, 2)]
    stride = 2
    for i, cfgs in enumerate(cfg.stacks):
        for n, (_, _, cout, s) in enumerate(cfgs):
            stride *= s
            pts.append(Point(f"smb{i + 1}.{n + 1}", f"backbone.smb{i + 1}.layer{n + 1}", cout, stride))
        stage = cfg.stage_after(i)
        if stage is not None:
            dim = cfg.stack_channels(i)
            for n in range(cfg.stages[stage].depth):
                module = f"backbone.trans{stage + 1}.transformer_blocks.{n}"
                pts.append(Point(f"trans{stage + 1}.{n + 1}", module, dim, stride))
    for j, dim in enumerate(cfg.head_dims):
        pts.append(Point(f"fuse{j + 1}", f"decode_head.fuse{j + 1}", dim, 8))
    pts.append(Point("head", "decode_head.linear_fuse", cfg.head_dims[-1], 8))
    return pts


register(
    ModelEntry(
        name="seaformer",
        variants=("tiny", "small", "base", "large"),
        # small: the size the SeaFormer paper leads with and the one reported on Cityscapes.
        default_variant="small",
        build="imacsr_cli.models._seaformer:build",
        points=points,
        # (parameters without the classifier, its input channels); tests/models check the built model.
        parameters={"tiny": (1_652_768, 96), "small": (3_970_768, 128), "base": (8_581_504, 160),
                    "large": (13_922_560, 192)},
        description="SeaFormer (ICLR 2023): MobileNetV2 stacks + squeeze-enhanced axial transformers; logits at 1/8",
    )
)
