"""TopFormer (Zhang et al., CVPR 2022), variants tiny / small / base, with its intermediate points.

Written from the architecture spec (shared/specs/models.md §2), which describes the official
hustvl/TopFormer code: a MobileNetV2 token pyramid (TPM), its four pyramid outputs average-pooled to
1/64 and concatenated into tokens, four transformer blocks over the tokens, semantic injection (SIM)
of the token groups back into the 1/8, 1/16 and 1/32 pyramid levels, and SimpleHead (sum at 1/8,
1×1 conv-BN-ReLU, dropout, classifier). Logits come out at 1/8 of the input.

Module names match the official ones (``backbone.tpm.layer3``, ``backbone.trans.transformer_blocks.0``,
``backbone.SIM.1``, ``decode_head.linear_fuse``…) so official checkpoints load by key.

This module is the registry entry (configs, points, sizes) and imports no torch; the network is
_topformer.py, imported when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from imacsr_cli.models.registry import ModelEntry, Point, register

if TYPE_CHECKING:  # pragma: no cover
    from imacsr_cli.models._blocks import BlockCfg

STEM_CHANNELS = 16
DEPTH = 4  # transformer blocks
KEY_DIM = 16  # per head, for q and k
ATTN_RATIO = 2  # v dim per head = ATTN_RATIO * KEY_DIM
MLP_RATIO = 2
DROP_PATH = 0.1
TOKEN_STRIDE = 64  # the pyramid is pooled to 1/64 (1/32 with c2t_stride 2)
INJECTED = (1, 2, 3)  # pyramid levels that receive semantics (1/8, 1/16, 1/32); P0 is unused


@dataclass(frozen=True)
class TopFormerConfig:
    layers: tuple[BlockCfg, ...]  # token pyramid: (kernel, expand, out channels, stride)
    pyramid: tuple[int, ...]  # 0-based layer indices whose outputs are P0..P3
    heads: int
    embed: int  # SIM / head width E
    dw_fuse: bool  # head linear_fuse is depthwise (tiny only)

    @property
    def pyramid_channels(self) -> list[int]:
        return [self.layers[i][2] for i in self.pyramid]


# ADE20K configs of the official repo (spec §2.2, §2.4, §2.5). The Cityscapes config of base uses
# E = 128 instead of 256; we follow the ADE20K one, whose parameter counts the spec verifies.
VARIANTS: dict[str, TopFormerConfig] = {
    "tiny": TopFormerConfig(
        layers=(
            (3, 1, 16, 1), (3, 4, 16, 2), (3, 3, 16, 1), (5, 3, 32, 2), (5, 3, 32, 1),
            (3, 3, 64, 2), (3, 3, 64, 1), (5, 6, 96, 2), (5, 6, 96, 1),
        ),
        pyramid=(2, 4, 6, 8), heads=4, embed=128, dw_fuse=True,
    ),
    "small": TopFormerConfig(
        layers=(
            (3, 1, 16, 1), (3, 4, 24, 2), (3, 3, 24, 1), (5, 3, 48, 2), (5, 3, 48, 1),
            (3, 3, 96, 2), (3, 3, 96, 1), (5, 6, 128, 2), (5, 6, 128, 1), (3, 6, 128, 1),
        ),
        pyramid=(2, 4, 6, 9), heads=6, embed=192, dw_fuse=False,
    ),
    "base": TopFormerConfig(
        layers=(
            (3, 1, 16, 1), (3, 4, 32, 2), (3, 3, 32, 1), (5, 3, 64, 2), (5, 3, 64, 1),
            (3, 3, 128, 2), (3, 3, 128, 1), (5, 6, 160, 2), (5, 6, 160, 1), (3, 6, 160, 1),
        ),
        pyramid=(2, 4, 6, 9), heads=8, embed=256, dw_fuse=False,
    ),
}  # fmt: skip


def points(variant: str) -> list[Point]:
    """stem, every TPM block, every transformer block (1/64 tokens), the three SIM outputs, head fuse.

    Spec §2.10 without the final logits. The parameter-free pooled tokens are not a point.
    """
    cfg = VARIANTS[variant]
    pts = [Point("stem", "backbone.tpm.stem", STEM_CHANNELS, 2)]
    stride = 2
    for i, (_, _, cout, s) in enumerate(cfg.layers):
        stride *= s
        pts.append(Point(f"tpm.{i + 1}", f"backbone.tpm.layer{i + 1}", cout, stride))
    dim = sum(cfg.pyramid_channels)
    for i in range(DEPTH):
        pts.append(Point(f"trans.{i + 1}", f"backbone.trans.transformer_blocks.{i}", dim, TOKEN_STRIDE))
    for i in INJECTED:
        pts.append(Point(f"sim{i}", f"backbone.SIM.{i}", cfg.embed, 4 * 2**i))
    pts.append(Point("head", "decode_head.linear_fuse", cfg.embed, 8))
    return pts


register(
    ModelEntry(
        name="topformer",
        variants=("tiny", "small", "base"),
        default_variant="tiny",
        build="imacsr_cli.models._topformer:build",
        points=points,
        # (parameters without the classifier, its input channels); tests/models check the built model.
        parameters={"tiny": (1_370_304, 128), "small": (3_005_712, 192), "base": (5_024_096, 256)},
        description="TopFormer (CVPR 2022): MobileNetV2 token pyramid + transformer at 1/64; logits at 1/8",
    )
)
