"""The SeaFormer networks. The architecture, its variants, configs and points are described in
seaformer.py (the torch-free registry entry), which names this module's ``build`` as the builder.

Module names match the official ones (``backbone.smb2.layer1``, ``backbone.trans1.transformer_blocks.0``,
``decode_head.fuse1``, ``decode_head.linear_fuse``…) so official checkpoints load by key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from imacsr_cli.models._blocks import (
    BackboneHead,
    BlockCfg,
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
from imacsr_cli.models.seaformer import (
    ATTN_RATIO,
    DETAIL_STACK,
    DROP_PATH,
    POS_EMB_LEN,
    VARIANTS,
    SeaFormerConfig,
)



class MV2Stack(nn.Module):
    """Inverted residuals ``layer1..N``, preceded by the stem in the first stack (``stem_block``)."""

    def __init__(self, cin: int, cfgs: tuple[BlockCfg, ...], with_stem: bool) -> None:
        super().__init__()
        if with_stem:
            self.stem_block = stem(cin)
        add_mv2_layers(self, cin, cfgs)
        self.num_layers = len(cfgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "stem_block"):
            x = self.stem_block(x)
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class AxialPosEmb(nn.Module):
    """Learned positional embedding along one axis, linearly resized to the axis length."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, dim, POS_EMB_LEN))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, L)
        return x + F.interpolate(self.pos_embed, size=x.shape[-1], mode="linear", align_corners=False)


def axial_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """Multi-head attention along one axis. q, k: (B, heads·dk, L); v: (B, heads·dv, L) → (B, heads·dv, L)."""
    b, _, length = q.shape
    q = q.reshape(b, heads, -1, length).transpose(2, 3)
    k = k.reshape(b, heads, -1, length)
    v = v.reshape(b, heads, -1, length).transpose(2, 3)
    out = torch.matmul((torch.matmul(q, k) * scale).softmax(dim=-1), v)  # (B, heads, L, dv)
    return out.transpose(2, 3).reshape(b, -1, length)


class SeaAttention(nn.Module):
    """Squeeze-enhanced axial attention (spec §3.4).

    q/k/v are squeezed by averaging over columns (→ per-row tokens) and over rows (→ per-column
    tokens); attention runs along each axis and the results are broadcast back onto v. A depthwise
    "detail enhancement" conv over [q, k, v] is gated by the result. Cost is linear in H + W.
    """

    def __init__(self, dim: int, key_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = key_dim**-0.5
        nh_kd = key_dim * heads
        dh = ATTN_RATIO * key_dim * heads
        self.to_q = ConvBN(dim, nh_kd)
        self.to_k = ConvBN(dim, nh_kd)
        self.to_v = ConvBN(dim, dh)
        self.proj = nn.Sequential(nn.ReLU6(), ConvBN(dh, dim, bn_init=0.0))
        self.proj_encode_row = nn.Sequential(nn.ReLU6(), ConvBN(dh, dh, bn_init=0.0))
        self.pos_emb_rowq = AxialPosEmb(nh_kd)
        self.pos_emb_rowk = AxialPosEmb(nh_kd)
        self.proj_encode_column = nn.Sequential(nn.ReLU6(), ConvBN(dh, dh, bn_init=0.0))
        self.pos_emb_columnq = AxialPosEmb(nh_kd)
        self.pos_emb_columnk = AxialPosEmb(nh_kd)
        detail = 2 * nh_kd + dh  # channels of [q, k, v]
        self.dwconv = ConvBN(detail, detail, 3, groups=detail)
        self.act = nn.ReLU6()
        self.pwconv = ConvBN(detail, dim)
        self.sigmoid = HSigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        detail = self.pwconv(self.act(self.dwconv(torch.cat([q, k, v], dim=1))))

        # mean over W → one token per row (B, C, H); mean over H → one token per column (B, C, W)
        row = axial_attention(
            self.pos_emb_rowq(q.mean(-1)), self.pos_emb_rowk(k.mean(-1)), v.mean(-1), self.heads, self.scale
        )
        col = axial_attention(
            self.pos_emb_columnq(q.mean(-2)), self.pos_emb_columnk(k.mean(-2)), v.mean(-2), self.heads, self.scale
        )
        row = self.proj_encode_row(row.unsqueeze(-1))  # (B, dh, H, 1)
        col = self.proj_encode_column(col.unsqueeze(-2))  # (B, dh, 1, W)
        return self.sigmoid(self.proj(v + row + col)) * detail


class SeaFormerBackbone(nn.Module):
    def __init__(self, cfg: SeaFormerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        cin = cfg.stem
        for i, cfgs in enumerate(cfg.stacks):
            self.add_module(f"smb{i + 1}", MV2Stack(cin, cfgs, with_stem=i == 0))
            cin = cfgs[-1][2]
        for j, stage in enumerate(cfg.stages):
            stack = len(cfg.stacks) - len(cfg.stages) + j
            dim = cfg.stack_channels(stack)  # no projection between a stack and its transformer
            blocks = [
                TransformerBlock(SeaAttention(dim, stage.key_dim, cfg.heads), dim, stage.mlp_ratio, rate)
                for rate in drop_path_rates(DROP_PATH, stage.depth)
            ]
            self.add_module(f"trans{j + 1}", TransformerStage(blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[detail (1/8), output of every transformer stage (coarser each)]."""
        outs = []
        for i in range(len(self.cfg.stacks)):
            x = getattr(self, f"smb{i + 1}")(x)
            if i == DETAIL_STACK:
                outs.append(x)
            stage = self.cfg.stage_after(i)
            if stage is not None:
                x = getattr(self, f"trans{stage + 1}")(x)
                outs.append(x)
        return outs


class Fusion(nn.Module):
    """detail ← conv-BN(detail) × upsampled h_sigmoid(conv-BN(context)); no additive term."""

    def __init__(self, c_detail: int, c_context: int, cout: int) -> None:
        super().__init__()
        self.local_embedding = ConvNormAct(c_detail, cout)
        self.global_act = ConvNormAct(c_context, cout)
        self.act = HSigmoid()

    def forward(self, detail: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.local_embedding(detail) * resize_to(self.act(self.global_act(context)), detail)


class LightHead(SegHead):
    """Fusion blocks ``fuse1..N`` → 1×1 depthwise conv-BN-ReLU → dropout → classifier."""

    def __init__(self, in_channels: list[int], dims: tuple[int, ...], num_classes: int) -> None:
        super().__init__(dims[-1], num_classes)
        c_detail = in_channels[0]
        for j, dim in enumerate(dims):
            self.add_module(f"fuse{j + 1}", Fusion(c_detail, in_channels[j + 1], dim))
            c_detail = dim
        self.num_fuse = len(dims)
        self.linear_fuse = ConvNormAct(dims[-1], dims[-1], groups=dims[-1], act=True)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[0]
        for j in range(self.num_fuse):
            x = getattr(self, f"fuse{j + 1}")(x, feats[j + 1])
        return self.classify(self.linear_fuse(x))


class SeaFormer(BackboneHead):
    def __init__(self, cfg: SeaFormerConfig, num_classes: int) -> None:
        first = len(cfg.stacks) - len(cfg.stages)
        in_channels = [cfg.stack_channels(DETAIL_STACK)]
        in_channels += [cfg.stack_channels(first + j) for j in range(len(cfg.stages))]
        super().__init__(SeaFormerBackbone(cfg), LightHead(in_channels, cfg.head_dims, num_classes))


def build(variant: str, num_classes: int, weights: str | None = None) -> SeaFormer:
    return with_backbone_weights(SeaFormer(VARIANTS[variant], num_classes), weights)
