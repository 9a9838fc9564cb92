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
"""

from __future__ import annotations

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
    pixels = torch.from_numpy(np.array(_pixels(image), dtype=np.uint8, copy=True)).permute(2, 0, 1)
    img = (pixels.float().div_(255.0) - _MEAN) / _STD
    return img, torch.from_numpy(label.astype(np.int64))


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
    image = np.asarray(Image.fromarray(pixels).resize((ww, wh), Image.BILINEAR, box=box))
    return image, np.asarray(Image.fromarray(label).resize((ww, wh), Image.NEAREST, box=box))


class EvalTransform:
    def __init__(self, eval_size: tuple[int, int], native: bool):
        self.size = None if native else tuple(eval_size)

    def __call__(self, image: Image.Image | np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None):
        if self.size is not None:
            image, label = resize_pair(image, label, self.size)  # type: ignore[arg-type]
        return to_tensors(image, label)


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
        img, lab = to_tensors(pixels, label)
        if img.shape[1:] != (ch, cw):
            padded_img = torch.zeros(3, ch, cw)
            padded_lab = torch.full((ch, cw), IGNORE_INDEX, dtype=torch.long)
            padded_img[:, : img.shape[1], : img.shape[2]] = img
            padded_lab[: lab.shape[0], : lab.shape[1]] = lab
            img, lab = padded_img, padded_lab
        if self.hflip and flip:
            img, lab = img.flip(-1), lab.flip(-1)
        return img.contiguous(), lab.contiguous()
