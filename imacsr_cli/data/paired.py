"""The dataset of image/label files that every on-disk reader builds, and what a reader provides.

A reader (cityscapes.py, camvid.py, synthia.py) says how to find pairs (``scan``), how to decode
labels (``codec``), how the protocol splits the stems (``split``) and what the classes are
(``info``). ``build_dataset`` turns that into the torch Dataset the registry hands to the trainer;
``register_reader`` registers such a dataset with the defaults every real dataset shares.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from imacsr_cli.lazy import lazy_import

np = lazy_import("numpy")  # loaded when an image is read, not when the dataset registers

from imacsr_cli.data.cache import DecodedCache
from imacsr_cli.data.files import Sample, Scan
from imacsr_cli.data.labels import LabelCodec, decode_rgb, read_rgb
from imacsr_cli.data.registry import DatasetEntry, DatasetInfo, register
from imacsr_cli.data.splits import SplitLists
from imacsr_cli.errors import DataError
from imacsr_cli.spec.runspec import DataSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from imacsr_cli.data.transforms import EvalTransform, TrainTransform

# Registering a reader (discovery, spec.resolve, the plan) imports no torch: transforms.py (torch) is
# imported when a dataset is built. PairedDataset is a plain map-style dataset (__len__, __getitem__),
# which is all a DataLoader needs.


class Reader:
    """What a dataset module implements for its on-disk layout(s)."""

    name: str = ""
    expected: str = ""  # the folders expected under the root, for error messages

    def scan(self, root: Path | None) -> Scan:
        raise NotImplementedError

    def codec(self, scan: Scan, classes: str) -> LabelCodec:
        raise NotImplementedError

    def split(self, scan: Scan, protocol: str, write: bool = True) -> SplitLists:
        raise NotImplementedError

    def info(self, spec: DataSpec) -> DatasetInfo:
        raise NotImplementedError


class PairedDataset:
    """(image, label) pairs from files: float32 (3, H, W) normalised, int64 (H, W) training ids; with
    ``compact = True`` (the trainer's DataLoader) the compact form of transforms.py instead.

    ``set_seed``/``set_epoch``: see transforms.py. Evaluation ignores them.
    """

    compact = False

    def __init__(self, samples: list[Sample], codec: LabelCodec, transform: TrainTransform | EvalTransform,
                 cache: DecodedCache | None = None):
        from imacsr_cli.data.transforms import TrainTransform, sample_rng

        self.samples = samples
        self.codec = codec
        self.transform = transform
        self.cache = cache
        self._rng = sample_rng if isinstance(transform, TrainTransform) else None
        self.seed = 0
        self.epoch = 0

    def set_seed(self, seed: int) -> None:
        self.seed = int(seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int):
        """The sample's image (PIL RGB) and label (uint8 training ids), before any transform."""
        sample = self.samples[index]
        image = read_rgb(sample.image)
        label = self.codec.decode(sample.label)
        if label.shape != (image.height, image.width):
            raise DataError(
                f"label {sample.label} is {label.shape[1]}x{label.shape[0]} but its image {sample.image} "
                f"is {image.width}x{image.height} (expected equal sizes)"
            )
        return image, label

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """What ``load`` reads, as arrays: uint8 (H, W, 3) pixels and uint8 (H, W) training ids
        (read-only maps of data.cache's files when it is set)."""
        if self.cache is None:
            return self.decode(index)
        sample = self.samples[index]
        return self.cache.read(sample.image, sample.label, lambda: self.decode(index))

    def decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.samples[index]
        image = decode_rgb(sample.image)
        label = self.codec.decode(sample.label)
        if label.shape != image.shape[:2]:
            raise DataError(
                f"label {sample.label} is {label.shape[1]}x{label.shape[0]} but its image {sample.image} "
                f"is {image.shape[1]}x{image.shape[0]} (expected equal sizes)"
            )
        return image, label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.read(index)
        rng = self._rng(self.seed, self.epoch, index) if self._rng is not None else None
        if self.compact:
            return self.transform.compact(image, label, rng)  # type: ignore[arg-type]
        return self.transform(image, label, rng)  # type: ignore[arg-type]


def build_dataset(reader: Reader, spec: DataSpec, split: str, root: Path | None) -> PairedDataset:
    """The train or val dataset of a resolved data spec; tree problems raise DataError here."""
    from imacsr_cli.data.transforms import EvalTransform, TrainTransform

    scan = reader.scan(root)
    scan.require_complete()
    lists = reader.split(scan, spec.split)
    stems = lists.get(split)
    limit = spec.num_train if split == "train" else spec.num_val
    if limit:
        stems = stems[:limit]
    if not stems:
        raise DataError(f"{reader.name} root {scan.root}: the {split} set of split {spec.split!r} is empty")
    by_stem = scan.by_stem()
    samples = [by_stem[s] for s in stems]
    if split == "train":
        base = None if spec.eval_native else spec.eval_size
        transform: TrainTransform | EvalTransform = TrainTransform(
            spec.train_size, spec.scale_range, spec.hflip, base, window=spec.resize == "window"
        )
    else:
        transform = EvalTransform(spec.eval_size, spec.eval_native)
    codec = reader.codec(scan, spec.classes)
    cache = DecodedCache(Path(spec.cache), codec.fingerprint()) if spec.cache else None
    return PairedDataset(samples, codec, transform, cache)


def register_reader(reader: Reader, *, split: str, classes: str, train_size: tuple[int, int],
                    splits: tuple[str, ...], class_sets: tuple[str, ...], description: str,
                    eval_size: tuple[int, int] | None = None) -> DatasetEntry:
    """Register the on-disk dataset ``reader.name``: its class table is ``reader.info``, its datasets
    ``build_dataset(reader, ...)``. Defaults filled into specs: ``split``, ``classes``, ``train_size``,
    ``eval_size`` (default: the train size), and what every real dataset shares: scale range 0.5-2
    and every file of each set (``num_train = num_val = 0``)."""
    return register(
        DatasetEntry(
            name=reader.name,
            info=reader.info,
            build=functools.partial(build_dataset, reader),
            defaults={
                "split": split,
                "classes": classes,
                "train_size": train_size,
                "eval_size": eval_size or train_size,
                "scale_range": (0.5, 2.0),
                "num_train": 0,
                "num_val": 0,
            },
            splits=splits,
            class_sets=class_sets,
            description=description,
        )
    )
