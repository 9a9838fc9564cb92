"""The data pipeline as it was before issue 13 (Pillow decoding, the whole image normalised before
the crop, a four-pass label lookup): the reference that tests/data/test_fast_pipeline.py and
benchmarks/data_pipeline.py compare today's pipeline against. Do not optimise it."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from imacsr_cli.data import labels
from imacsr_cli.data.registry import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
from imacsr_cli.data.transforms import EvalTransform, TrainTransform, sample_rng

_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def _read_raw(codec: labels.LabelCodec, path):
    if codec.read_raw is labels.read_gray_ids:
        return np.asarray(Image.open(path), dtype=np.uint8)
    if codec.read_raw is labels.read_rgb_array:
        return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
    if codec.read_raw is labels.read_red_channel:
        if labels.png_header(path)[2] == 8:
            return np.asarray(Image.open(path), dtype=np.uint8)[..., 0].astype(np.int32)
        return labels._decode_png16(path)[0]
    raise AssertionError(f"no legacy reader for {codec.read_raw}")


def _to_train(codec: labels.LabelCodec, raw: np.ndarray) -> np.ndarray:
    if isinstance(codec, labels.ColourCodec):
        return codec.to_train(raw)
    inside = raw < len(codec.lut)
    ids = codec.lut[np.where(inside, raw, 0)]
    return np.where(inside, ids, IGNORE_INDEX).astype(np.uint8)


def _to_tensors(image: Image.Image, label: np.ndarray):
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    img = (pixels.float().div_(255.0) - _MEAN) / _STD
    return img, torch.from_numpy(label.astype(np.int64))


def _resize_pair(image: Image.Image, label: np.ndarray, size):
    h, w = size
    if image.size == (w, h):
        return image, label
    return image.resize((w, h), Image.BILINEAR), np.asarray(Image.fromarray(label).resize((w, h), Image.NEAREST))


def _train(t: TrainTransform, image: Image.Image, label: np.ndarray, rng: np.random.Generator):
    scale = rng.uniform(*t.scale_range)
    fy, fx = rng.random(2)
    flip = rng.random() < 0.5
    base_h, base_w = t.base or (image.height, image.width)
    h, w = max(1, round(base_h * scale)), max(1, round(base_w * scale))
    image, label = _resize_pair(image, label, (h, w))
    img, lab = _to_tensors(image, label)
    ch, cw = t.crop
    top, left = int(fy * (max(h - ch, 0) + 1)), int(fx * (max(w - cw, 0) + 1))
    img, lab = img[:, top : top + ch, left : left + cw], lab[top : top + ch, left : left + cw]
    if img.shape[1:] != (ch, cw):
        padded_img = torch.zeros(3, ch, cw)
        padded_lab = torch.full((ch, cw), IGNORE_INDEX, dtype=torch.long)
        padded_img[:, : img.shape[1], : img.shape[2]] = img
        padded_lab[: lab.shape[0], : lab.shape[1]] = lab
        img, lab = padded_img, padded_lab
    if t.hflip and flip:
        img, lab = img.flip(-1), lab.flip(-1)
    return img.contiguous(), lab.contiguous()


def getitem(ds, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ds[index]`` of a PairedDataset, computed the pre-issue-13 way."""
    sample = ds.samples[index]
    image = Image.open(sample.image).convert("RGB")
    label = _to_train(ds.codec, _read_raw(ds.codec, sample.label))
    assert label.shape == (image.height, image.width)
    if isinstance(ds.transform, TrainTransform):
        return _train(ds.transform, image, label, sample_rng(ds.seed, ds.epoch, index))
    assert isinstance(ds.transform, EvalTransform)
    if ds.transform.size is not None:
        image, label = _resize_pair(image, label, ds.transform.size)
    return _to_tensors(image, label)
