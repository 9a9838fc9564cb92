"""The TopFormer networks. The architecture, its variants, configs and points are described in
topformer.py (the torch-free registry entry), which names this module's ``build`` as the builder.

Module names match the official ones (``backbone.tpm.layer3``, ``backbone.trans.transformer_blocks.0``,
``backbone.SIM.1``, ``decode_head.linear_fuse``…) so official checkpoints load by key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from imacsr_cli.models._blocks import (
    BackboneHead,
    ConvBN,
    ConvNormAct,
    HSigmoid,
    SegHead,
    TransformerBlock,
    TransformerStage,
    add_mv2_layers,
    drop_path_rates,
    resize_to,
    stem,
    with_backbone_weights,
)
from imacsr_cli.models.topformer import (
    ATTN_RATIO,
    DEPTH,
    DROP_PATH,
    INJECTED,
    KEY_DIM,
    MLP_RATIO,
    STEM_CHANNELS,
    VARIANTS,
    TopFormerConfig,
)



class TokenPyramid(nn.Module):
    """Stem + inverted residuals ``layer1..N``; returns the outputs of the pyramid layers."""

    def __init__(self, cfg: TopFormerConfig) -> None:
        super().__init__()
        self.stem = stem(STEM_CHANNELS)
        add_mv2_layers(self, STEM_CHANNELS, cfg.layers)
        self.num_layers = len(cfg.layers)
        self.out_indices = cfg.pyramid

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i + 1}")(x)
            if i in self.out_indices:
                outs.append(x)
        return outs


def pool_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Average-pool every level to half the size of the coarsest (1/64) and concatenate channels.

    ceil(h/2) of the 1/32 map, as the official code, so odd sizes keep their last row/column.
    """
    h, w = pyramid[-1].shape[-2:]
    size = ((h - 1) // 2 + 1, (w - 1) // 2 + 1)
    return torch.cat([F.adaptive_avg_pool2d(p, size) for p in pyramid], dim=1)


class Attention(nn.Module):
    """Multi-head self-attention over all token positions, on 4-D maps.

    Like the official code, the logits are NOT scaled by 1/sqrt(key_dim) (spec §2.4).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.dv = ATTN_RATIO * KEY_DIM
        self.to_q = ConvBN(dim, heads * KEY_DIM)
        self.to_k = ConvBN(dim, heads * KEY_DIM)
        self.to_v = ConvBN(dim, heads * self.dv)
        self.proj = nn.Sequential(nn.ReLU6(), ConvBN(heads * self.dv, dim, bn_init=0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.to_q(x).reshape(b, self.heads, KEY_DIM, h * w).transpose(2, 3)
        k = self.to_k(x).reshape(b, self.heads, KEY_DIM, h * w)
        v = self.to_v(x).reshape(b, self.heads, self.dv, h * w).transpose(2, 3)
        out = torch.matmul(torch.matmul(q, k).softmax(dim=-1), v)  # (b, heads, hw, dv)
        return self.proj(out.transpose(2, 3).reshape(b, self.heads * self.dv, h, w))


class Injection(nn.Module):
    """SIM "multi-sum": local conv-BN(P_i) × upsampled h_sigmoid(conv-BN(tokens)) + upsampled conv-BN(tokens)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.local_embedding = ConvNormAct(cin, cout)
        self.global_embedding = ConvNormAct(cin, cout)
        self.global_act = ConvNormAct(cin, cout)
        self.act = HSigmoid()

    def forward(self, local: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        gate = resize_to(self.act(self.global_act(tokens)), local)
        glob = resize_to(self.global_embedding(tokens), local)
        return self.local_embedding(local) * gate + glob


class TopFormerBackbone(nn.Module):
    def __init__(self, cfg: TopFormerConfig) -> None:
        super().__init__()
        self.channels = cfg.pyramid_channels
        dim = sum(self.channels)
        self.tpm = TokenPyramid(cfg)
        rates = drop_path_rates(DROP_PATH, DEPTH)
        self.trans = TransformerStage(
            [TransformerBlock(Attention(dim, cfg.heads), dim, MLP_RATIO, rate) for rate in rates]
        )
        # Index i of SIM serves pyramid level i; level 0 is an Identity, as in the official module list.
        self.SIM = nn.ModuleList(
            Injection(c, cfg.embed) if i in INJECTED else nn.Identity() for i, c in enumerate(self.channels)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        pyramid = self.tpm(x)
        tokens = self.trans(pool_pyramid(pyramid))
        groups = tokens.split(self.channels, dim=1)
        return [self.SIM[i](pyramid[i], groups[i]) for i in INJECTED]


class SimpleHead(SegHead):
    """Sum the SIM outputs at 1/8 → 1×1 conv-BN-ReLU (depthwise for tiny) → dropout → classifier."""

    def __init__(self, channels: int, num_classes: int, depthwise: bool) -> None:
        super().__init__(channels, num_classes)
        self.linear_fuse = ConvNormAct(channels, channels, groups=channels if depthwise else 1, act=True)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[0]
        for f in feats[1:]:
            x = x + resize_to(f, feats[0])  # not in place: feats[0] is a hooked point
        return self.classify(self.linear_fuse(x))


class TopFormer(BackboneHead):
    def __init__(self, cfg: TopFormerConfig, num_classes: int) -> None:
        super().__init__(TopFormerBackbone(cfg), SimpleHead(cfg.embed, num_classes, cfg.dw_fuse))


def build(variant: str, num_classes: int, weights: str | None = None) -> TopFormer:
    return with_backbone_weights(TopFormer(VARIANTS[variant], num_classes), weights)
