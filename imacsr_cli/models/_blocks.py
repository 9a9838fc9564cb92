"""Building blocks shared by TopFormer and SeaFormer: conv-BN, MobileNetV2 blocks, FFN, weights.

Both official repositories (hustvl/TopFormer, fudan-zvg/SeaFormer) build their backbones from the
same pieces. Submodule *names* here follow theirs on purpose, so that their ImageNet checkpoints
(and full mmseg segmentation checkpoints, under ``backbone.`` / ``decode_head.``) load by key:

- a conv + BN pair (their ``Conv2d_BN``) has children ``c`` and ``bn``;
- an mmcv-style conv module (their ``ConvModule``) has children ``conv``, ``bn`` and ``activate``;
- an inverted residual keeps its layers in ``conv``; an FFN has ``fc1``, ``dwconv``, ``fc2``.

No in-place operations are applied to block outputs: the trainer hooks them (intermediate points)
and reuses the captured tensors in its own losses.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from imacsr_cli.errors import SpecError

# (kernel, expand ratio, output channels, stride) of one inverted residual block.
BlockCfg = tuple[int, int, int, int]


class ConvBN(nn.Sequential):
    """Conv (no bias, "same" padding) followed by BatchNorm; no activation."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, bn_init: float = 1.0
    ) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        # bn_init=0 makes a residual branch start as the identity (the official projections do this).
        nn.init.constant_(self.bn.weight, bn_init)
        nn.init.zeros_(self.bn.bias)


class ConvNormAct(nn.Sequential):
    """1×1 conv (no bias) + BN, optionally + ReLU: the layout of an mmcv ``ConvModule``."""

    def __init__(self, cin: int, cout: int, groups: int = 1, act: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        if act:
            self.activate = nn.ReLU()


class HSigmoid(nn.Module):
    """ReLU6(x + 3) / 6, the gate of TopFormer's injection and SeaFormer's attention and fusion."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch for a random subset of samples."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Per-block stochastic-depth rates of one stage: linear from 0 to `rate`."""
    return [x.item() for x in torch.linspace(0, rate, depth)]


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1×1 expand + ReLU] → k×k depthwise + ReLU → 1×1 linear projection."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [ConvBN(cin, hidden), nn.ReLU()]
        layers += [ConvBN(hidden, hidden, kernel, stride, groups=hidden), nn.ReLU(), ConvBN(hidden, cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def add_mv2_layers(parent: nn.Module, cin: int, cfgs: tuple[BlockCfg, ...]) -> int:
    """Add ``layer1``, ``layer2``, … (official names) to `parent`; returns the output channels."""
    for i, (kernel, expand, cout, stride) in enumerate(cfgs):
        parent.add_module(f"layer{i + 1}", InvertedResidual(cin, cout, kernel, stride, expand))
        cin = cout
    return cin


def stem(cout: int) -> nn.Sequential:
    """3×3 stride-2 conv-BN-ReLU from RGB."""
    return nn.Sequential(ConvBN(3, cout, 3, 2), nn.ReLU())


class FFN(nn.Module):
    """Transformer feed-forward on 4-D maps: 1×1 conv-BN → 3×3 depthwise conv → ReLU6 → 1×1 conv-BN."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = ConvBN(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=True)
        self.act = nn.ReLU6()
        self.fc2 = ConvBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class TransformerBlock(nn.Module):
    """x + DropPath(attn(x)), then x + DropPath(ffn(x)); no LayerNorm (BN sits in the convs)."""

    def __init__(self, attn: nn.Module, dim: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.attn = attn
        self.drop_path = DropPath(drop_path)
        self.mlp = FFN(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.mlp(x))


class TransformerStage(nn.Module):
    """A stack of transformer blocks under the official name ``transformer_blocks``."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.transformer_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.transformer_blocks:
            x = block(x)
        return x


class SegHead(nn.Module):
    """The final classifier of an mmseg decode head: Dropout2d(0.1) → 1×1 conv with bias."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.init_classifier()

    def init_classifier(self) -> None:
        nn.init.normal_(self.conv_seg.weight, 0.0, 0.01)  # mmseg's default for the classifier
        nn.init.zeros_(self.conv_seg.bias)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(x))


def init_convs(module: nn.Module) -> None:
    """He-normal init of every conv (fan-out over groups), biases zero: the official backbone init.

    BatchNorm is left as constructed. The official code also resets every BN γ to 1, which (with
    plain BN) undoes the γ=0 init of the attention projections; we keep γ=0, as the authors intend
    and as happened in their SyncBN runs.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class BackboneHead(nn.Module):
    """A TopFormer / SeaFormer segmentation model: ``backbone`` → ``decode_head`` → logits at 1/8.

    The attribute names are the official ones (``backbone.``, ``decode_head.``), so full mmseg
    checkpoints load by key. Built modules are then initialised as the official code does.
    """

    def __init__(self, backbone: nn.Module, decode_head: SegHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        init_convs(self)  # He-normal convs, as the official backbone init...
        self.decode_head.init_classifier()  # ...but mmseg's N(0, 0.01) for the classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K, ceil(H/8), ceil(W/8))."""
        return self.decode_head(self.backbone(x))


_Model = TypeVar("_Model", bound=BackboneHead)


def with_backbone_weights(model: _Model, weights: str | None) -> _Model:
    """``model`` with the backbone of the local checkpoint ``weights`` loaded (``load_backbone_weights``);
    as built when ``weights`` is None or empty."""
    if weights:
        load_backbone_weights(model.backbone, weights)
    return model


def resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of `x` to the spatial size of `like`."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


# Keys under which checkpoints nest their state dict, and prefixes that wrap backbone keys
# (DataParallel, mmseg EncoderDecoder).
_NESTED_KEYS = ("state_dict_ema", "state_dict", "model")
_PREFIXES = ("module.", "backbone.")


def _unwrap(obj: object) -> Mapping[str, torch.Tensor]:
    while isinstance(obj, Mapping):
        nested = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            return obj
        obj = nested
    raise SpecError("key 'model.weights': the file does not hold a state dict")


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def load_backbone_weights(backbone: nn.Module, path: str) -> int:
    """Load a local ImageNet state dict into `backbone` (non-strict); returns the number of tensors loaded.

    Keys that the backbone lacks (a classifier, a segmentation head) are ignored. Raises SpecError if
    the file is missing, unreadable, shares no key with the backbone, or was made for another variant.
    """
    if not os.path.isfile(path):
        raise SpecError(f"key 'model.weights': file not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle error, a truncated file...: the user's file, not our bug
        raise SpecError(f"key 'model.weights': cannot read {path}: {err}") from None
    own = backbone.state_dict()
    state = {_strip(k): v for k, v in _unwrap(raw).items() if isinstance(v, torch.Tensor)}
    matched = {k: v for k, v in state.items() if k in own}
    if not matched:
        raise SpecError(
            f"key 'model.weights': no tensor of {path} matches the backbone "
            f"({len(own)} backbone tensors missing); is it a checkpoint of this model?"
        )
    wrong = [k for k, v in matched.items() if v.shape != own[k].shape]
    if wrong:
        raise SpecError(
            f"key 'model.weights': {len(wrong)} tensors of {path} have other shapes than this variant's "
            f"(first: {wrong[0]} {tuple(matched[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)}); "
            f"is it a checkpoint of another variant?"
        )
    backbone.load_state_dict(matched, strict=False)
    return len(matched)
