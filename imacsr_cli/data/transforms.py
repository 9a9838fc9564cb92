"""Paired image/label transforms for training and evaluation.

Training (``TrainTransform``), in this order:

1. scale: the image is resized to ``s`` × its base size, with ``s`` drawn uniformly from
   ``data.scale_range``. The base size is ``data.eval_size``, or the image's native size when
   ``data.eval_native`` is set, so training sees the scales evaluation sees;
2. crop: a random ``data.train_size`` window; a smaller image is padded at the bottom/right
   (image with 0 after normalisation, label with IGNORE_INDEX = 255, so padding never counts).
   With ``data.resize = "whole"`` (the default, and what every run before 0.2 did) steps 1 and 2
   resize the whole image and then cut the window out; with ``"window"`` only the window is
   resampled (Pillow's ``box=``), from the same draws: the same window of the same scaled image, at
   the cost of the crop instead of the whole scaled image. Pillow places a box's samples from a
   float32 offset, so a few pixels differ by a level from ``"whole"``: a different run, hence a
   key in the hash;
3. flip: horizontal, with probability 1/2, if ``data.hflip``;
4. ImageNet normalisation (registry.IMAGENET_MEAN / IMAGENET_STD).

Evaluation (``EvalTransform``): a fixed resize to ``data.eval_size``, or nothing when
``data.eval_native`` (``registry.pad_collate`` then pads a batch with 255, which metrics skip).

Images are resized bilinearly, labels always with nearest neighbour (interpolation would invent
class ids).

Randomness: the training draws for sample ``index`` come from a generator seeded with
``(seed, epoch, index)``, never from the global RNG, so a resumed run, any number of DataLoader
workers and any batch order see the same augmentations. The datasets built by
``registry.build(spec, split)`` therefore have two methods the trainer calls:

- ``set_seed(seed)`` once, with ``train.seed`` (the DataSpec has no seed of its own);
- ``set_epoch(epoch)`` at the start of every epoch, before iterating the DataLoader.

Call them if the dataset has them (``hasattr``); evaluation datasets have them too and ignore them.
Workers copy the dataset when a DataLoader iterator is created, so ``persistent_workers=True``
would freeze the epoch seen by the workers: create the iterator after ``set_epoch`` and do not
use persistent workers.

Two forms of a sample. ``transform(image, label, rng)`` gives the normalised float32 (3, H, W) image
and int64 (H, W) label. ``transform.compact(...)`` gives what the trainer's DataLoader carries: the
uint8 (3, H, W) pixels, the uint8 (H, W) label and the (top, left, bottom, right) box of the real
pixels (outside it is padding); ``batch_to_device`` normalises a batch of them where the model runs
and zeroes the padding, so a worker does no float work and moves a quarter of the bytes. Both forms
run the same elementwise arithmetic, so their values are equal bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from imacsr_cli.data.registry import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD

_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation; seeds may be negative (SeedSequence wants >= 0)."""
    return np.random.default_rng([seed % 2**63, epoch % 2**63, index])


def _pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) from a PIL RGB image or such an array."""
    return image if isinstance(image, np.ndarray) else np.asarray(image, dtype=np.uint8)


def to_tensors(image: Image.Image | np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB pixels (PIL or uint8 (H, W, 3)) + uint8 ids → normalised float32 (3, H, W) and int64 (H, W).

    Normalisation is elementwise, so normalising a crop gives the crop of the normalised image."""
    img, lab = _uint8_tensors(image, label)
    return normalise(img), lab.long()


def _uint8_tensors(image: Image.Image | np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (3, H, W) pixels and uint8 (H, W) label, sharing the arrays' memory where they allow it."""
    pixels, label = _pixels(image), np.asarray(label, dtype=np.uint8)
    pixels = pixels if pixels.flags.writeable else pixels.copy()  # torch warns on read-only memory
    label = label if label.flags.writeable else label.copy()
    return torch.from_numpy(pixels).permute(2, 0, 1), torch.from_numpy(label)


_ON_DEVICE: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (..., 3, H, W) → ImageNet-normalised float32, on their device."""
    if pixels.device not in _ON_DEVICE:  # copied once: a copy per batch would wait for the GPU each time
        _ON_DEVICE[pixels.device] = (_MEAN.to(pixels.device), _STD.to(pixels.device))
    mean, std = _ON_DEVICE[pixels.device]
    return (pixels.float().div_(255.0) - mean) / std


def _full_box(height: int, width: int) -> torch.Tensor:
    return torch.tensor([0, 0, height, width])


def batch_to_device(batch: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A DataLoader batch on ``device`` as (normalised float32 images, int64 labels).

    A compact batch (uint8 pixels, uint8 labels, boxes) is moved as uint8, then normalised there with
    everything outside each sample's box set to 0, as the float form pads; a float batch (the
    synthetic scenes) is only moved."""
    if len(batch) == 2:
        images, labels = batch
        return images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    pixels, labels, boxes = batch
    images = normalise(pixels.to(device, non_blocking=True))
    height, width = images.shape[-2:]
    for i, (top, left, bottom, right) in enumerate(boxes.tolist()):  # boxes stay on the CPU: no sync
        if (top, left, bottom, right) != (0, 0, height, width):
            images[i, :, :top], images[i, :, bottom:] = 0.0, 0.0
            images[i, :, :, :left], images[i, :, :, right:] = 0.0, 0.0
    return images, labels.to(device, non_blocking=True).long()


def resize_pair(image: Image.Image | np.ndarray, label: np.ndarray,
                size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize to (H, W) with Pillow: bilinear for the image, nearest for the label (uint8 arrays out)."""
    h, w = size
    pixels = _pixels(image)
    if pixels.shape[:2] == (h, w):
        return pixels, label
    pixels = np.asarray(Image.fromarray(pixels).resize((w, h), Image.BILINEAR))
    label = np.asarray(Image.fromarray(label).resize((w, h), Image.NEAREST))
    return pixels, label


def _window(pixels: np.ndarray, label: np.ndarray, size: tuple[int, int],
            window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The (top, left, height, width) window of the image resized to ``size`` (H, W), resampling only
    that window: bilinear for the image, nearest for the label, as ``resize_pair``."""
    (h, w), (top, left, wh, ww) = size, window
    src_h, src_w = pixels.shape[:2]
    if (src_h, src_w) == (h, w):
        return pixels[top : top + wh, left : left + ww], label[top : top + wh, left : left + ww]
    sy, sx = src_h / h, src_w / w  # source pixels per output pixel
    box = (left * sx, top * sy, (left + ww) * sx, (top + wh) * sy)
    # Hand Pillow only the source region the box's filter taps reach (a bilinear tap reaches
    # max(1, scale) pixels from a sample's centre), not the whole image: fromarray copies what it
    # is given, and at 2048x1024 that copy cost as much as the resampling.
    mx, my = math.ceil(max(1.0, sx)) + 1, math.ceil(max(1.0, sy)) + 1
    x0, y0 = max(0, int(box[0]) - mx), max(0, int(box[1]) - my)
    x1, y1 = min(src_w, math.ceil(box[2]) + mx), min(src_h, math.ceil(box[3]) + my)
    box = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
    image = np.asarray(Image.fromarray(pixels[y0:y1, x0:x1]).resize((ww, wh), Image.BILINEAR, box=box))
    return image, np.asarray(Image.fromarray(label[y0:y1, x0:x1]).resize((ww, wh), Image.NEAREST, box=box))


class EvalTransform:
    def __init__(self, eval_size: tuple[int, int], native: bool):
        self.size = None if native else tuple(eval_size)

    def __call__(self, image: Image.Image | np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None):
        if self.size is not None:
            image, label = resize_pair(image, label, self.size)  # type: ignore[arg-type]
        return to_tensors(image, label)

    def compact(self, image: Image.Image | np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None):
        if self.size is not None:
            image, label = resize_pair(image, label, self.size)  # type: ignore[arg-type]
        img, lab = _uint8_tensors(image, label)
        return img, lab, _full_box(*lab.shape)  # views of the arrays: the collation copies them once


class TrainTransform:
    def __init__(
        self,
        train_size: tuple[int, int],
        scale_range: tuple[float, float],
        hflip: bool,
        base_size: tuple[int, int] | None,
        window: bool = False,
    ):
        self.crop = tuple(train_size)
        self.window = window
        self.scale_range = tuple(scale_range)
        self.hflip = hflip
        self.base = None if base_size is None else tuple(base_size)  # None: the image's own size

    def __call__(self, image: Image.Image | np.ndarray, label: np.ndarray, rng: np.random.Generator):
        img, lab, box = self.compact(image, label, rng)
        top, left, bottom, right = box.tolist()
        out = torch.zeros(img.shape, dtype=torch.float32)  # padding: 0 after normalisation
        out[:, top:bottom, left:right] = normalise(img[:, top:bottom, left:right])
        return out, lab.long()

    def compact(self, image: Image.Image | np.ndarray, label: np.ndarray, rng: np.random.Generator):
        # Always draw the same four numbers in the same order, so a sample's draws never depend on
        # its image size or on the options that are off.
        scale = rng.uniform(*self.scale_range)
        fy, fx = rng.random(2)
        flip = rng.random() < 0.5

        pixels = _pixels(image)
        base_h, base_w = self.base or pixels.shape[:2]
        h, w = max(1, round(base_h * scale)), max(1, round(base_w * scale))
        ch, cw = self.crop
        top, left = int(fy * (max(h - ch, 0) + 1)), int(fx * (max(w - cw, 0) + 1))
        if self.window:
            pixels, label = _window(pixels, label, (h, w), (top, left, min(ch, h - top), min(cw, w - left)))
        else:
            # data.resize = "whole": the whole image is resized, but only the crop is converted to
            # float and normalised.
            pixels, label = resize_pair(pixels, label, (h, w))
            pixels, label = pixels[top : top + ch, left : left + cw], label[top : top + ch, left : left + cw]
        img, lab = _uint8_tensors(pixels, label)
        rows, cols = lab.shape
        if (rows, cols) != (ch, cw):  # a scaled image smaller than the crop: pad at the bottom/right
            padded_img = torch.zeros(3, ch, cw, dtype=torch.uint8)
            padded_lab = torch.full((ch, cw), IGNORE_INDEX, dtype=torch.uint8)
            padded_img[:, :rows, :cols] = img
            padded_lab[:rows, :cols] = lab
            img, lab = padded_img, padded_lab
        box = torch.tensor([0, 0, rows, cols])
        if self.hflip and flip:
            img, lab = img.flip(-1), lab.flip(-1)
            box = torch.tensor([0, cw - cols, rows, cw])
        return img, lab, box  # views or fresh tensors: the collation copies them once
