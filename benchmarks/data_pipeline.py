"""Data-pipeline throughput: today's reader and paired transforms against the pre-issue-13 ones.

    python benchmarks/data_pipeline.py                       # a fake Cityscapes tree at 2048×1024
    python benchmarks/data_pipeline.py --root /data/cityscapes --workers 0 2

The training set of a Cityscapes tree (by default a fake one at the native 2048×1024, written once to
a temporary folder by ``imacsr data fake``) goes through the default Cityscapes training transform
(random scale 0.5–2 of 512×1024, a 512×1024 crop, flip, ImageNet normalisation) and a DataLoader
with 0, 1 and 2 workers, three ways: the pre-issue-13 pipeline (tests/data/legacy_pipeline.py), today's
with the default ``data.resize = "whole"`` and today's with ``data.resize = "window"``, each of these two
also with ``data.cache`` (decoded pairs mapped from a folder, filled by the warm-up round: the rate of
every epoch after the first); beside them, the time to decode the same PNG pairs alone (Pillow, as
before, and libpng, as now). Today's pipelines run
as the trainer's DataLoader does: compact uint8 batches, normalised later where the model runs
(``transforms.batch_to_device``); the last line is that normalisation's own rate on this CPU, the work
a GPU takes over.

Configurations are interleaved: each round runs every one of them once (in alternating order) after
one warm-up round that is not counted; the table shows the median images/s over the rounds with
their min–max, and the ratio new / legacy at each worker count (median and min–max of the per-round
ratios). The main process uses one torch thread, so "0 workers" is one core; DataLoader workers use
one thread each. Sample k of a measurement is image k mod n at epoch 1 + k // n, so every image is
seen with fresh augmentations.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("legacy", "whole", "window", "whole+cache", "window+cache")
sys.path.insert(0, str(ROOT))


def _legacy():
    spec = importlib.util.spec_from_file_location("legacy_pipeline", ROOT / "tests" / "data" / "legacy_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class Flat:
    """Sample k = dataset item k mod n at epoch 1 + k // n, through the new or the legacy pipeline."""

    def __init__(self, dataset, count: int, legacy) -> None:
        self.dataset, self.count, self.legacy = dataset, count, legacy

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int):
        n = len(self.dataset)
        self.dataset.set_epoch(1 + k // n)
        return self.legacy.getitem(self.dataset, k % n) if self.legacy else self.dataset[k % n]


def pipeline(dataset, count: int, workers: int, legacy, batch: int) -> float:
    """Images per second through a DataLoader, timed from the first batch to the last."""
    from torch.utils.data import DataLoader

    from imacsr_cli.data.registry import pad_collate

    loader = DataLoader(Flat(dataset, count + batch, legacy), batch_size=batch, num_workers=workers,
                        collate_fn=pad_collate)
    it = iter(loader)
    next(it)  # worker start-up is not part of the rate
    t0 = time.perf_counter()
    seen = sum(len(batch[0]) for batch in it)
    return seen / (time.perf_counter() - t0)


def normalise_rate(dataset, count: int, batch: int) -> float:
    """Images per second of ``batch_to_device`` on the CPU over compact batches of ``dataset``."""
    import torch

    from imacsr_cli.data.registry import pad_collate
    from imacsr_cli.data.transforms import batch_to_device

    compact = pad_collate([dataset[i % len(dataset)] for i in range(batch)])
    t0 = time.perf_counter()
    for _ in range(max(1, count // batch)):
        batch_to_device(compact, torch.device("cpu"))
    return max(1, count // batch) * batch / (time.perf_counter() - t0)


def decode(dataset, count: int, legacy) -> float:
    """Pairs per second through the decoders alone (no transform)."""
    import numpy as np
    from PIL import Image

    from imacsr_cli.data.labels import decode_rgb

    t0 = time.perf_counter()
    for k in range(count):
        sample = dataset.samples[k % len(dataset)]
        if legacy:
            np.asarray(Image.open(sample.image).convert("RGB"))
            np.asarray(Image.open(sample.label))
        else:
            decode_rgb(sample.image)
            dataset.codec.read_raw(sample.label)
    return count / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="a Cityscapes root; default: a fake tree at --size, written to a temp folder")
    parser.add_argument("--size", default="2048x1024", help="W×H of the fake tree")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=12, help="images per measurement")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import torch

    from imacsr_cli.data import registry
    from imacsr_cli.data.fake import write_fake
    from imacsr_cli.spec import RunSpec, resolve

    torch.set_num_threads(1)
    tmp = None
    root = args.root
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="imacsr-bench-")
        w, h = (int(v) for v in args.size.lower().split("x"))
        root = write_fake("cityscapes", Path(tmp.name) / "cityscapes", size=(w, h)).root
    spec = resolve(RunSpec.from_dict({"data": {"name": "cityscapes", "root": str(root)}}))
    cache = tempfile.TemporaryDirectory(prefix="imacsr-bench-cache-")
    cached = dataclasses.replace(spec.data, cache=cache.name)
    datasets = {"legacy": registry.build(spec.data, "train"), "whole": registry.build(spec.data, "train"),
                "window": registry.build(dataclasses.replace(spec.data, resize="window"), "train"),
                "whole+cache": registry.build(cached, "train"),
                "window+cache": registry.build(dataclasses.replace(cached, resize="window"), "train")}
    for kind in KINDS[1:]:
        datasets[kind].compact = True  # as the trainer's DataLoader reads them
    legacy = _legacy()
    d = spec.data
    print(f"cityscapes at {root}: {len(datasets['whole'])} training images; scale {d.scale_range[0]}–"
          f"{d.scale_range[1]} of {d.eval_size[0]}×{d.eval_size[1]}, crop {d.train_size[0]}×{d.train_size[1]}, "
          f"flip {d.hflip}; {args.images} images per measurement, batch {args.batch}, {args.rounds} rounds after "
          "1 warm-up round", flush=True)

    # legacy: the pre-issue-13 reader and transform; whole: today's, data.resize = "whole" (the default);
    # window: today's with data.resize = "window". Decoding is the same for whole and window. The two
    # "+cache" kinds read data.cache, filled here first: what every epoch after a run's first reads.
    for i in range(len(datasets["whole+cache"])):
        datasets["whole+cache"][i]
    configs = [("decode only", "legacy", None), ("decode only", "whole", None)]  # the cache decodes nothing
    configs += [(f"pipeline, {w} workers", kind, w) for w in args.workers for kind in KINDS]
    configs += [("normalise (CPU)", "whole", -1)]
    rates: dict[tuple[str, str], list[float]] = {(label, kind): [] for label, kind, _ in configs}
    for r in range(args.rounds + 1):
        order = configs if r % 2 == 0 else configs[::-1]
        for label, kind, workers in order:
            old = legacy if kind == "legacy" else None
            rate = (decode(datasets[kind], args.images, old) if workers is None
                    else normalise_rate(datasets[kind], args.images, args.batch) if workers < 0
                    else pipeline(datasets[kind], args.images, workers, old, args.batch))
            if r:
                rates[(label, kind)].append(rate)
        if r:
            print(f"round {r}: " + ", ".join(f"{label} {kind} {rates[(label, kind)][-1]:.2f}"
                                             for label, kind, _ in configs), flush=True)

    def cell(v: list[float]) -> str:
        return f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})" if v else "—"

    news = KINDS[1:]
    print(f"{'images/s: median (min–max)':<24}" + "".join(f"{k:>24}" for k in KINDS)
          + "".join(f"{k + ' / legacy':>24}" for k in news))
    for label in dict.fromkeys(label for label, _, _ in configs):
        old = rates.get((label, "legacy"), [])
        row = [rates.get((label, k), []) for k in news]
        ratios = [[b / a for a, b in zip(old, v)] if v and old else [] for v in row]
        print(f"{label:<24}" + "".join(f"{cell(v):>24}" for v in [old, *row])
              + "".join(f"{cell(v):>24}" for v in ratios))
    cache.cleanup()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
