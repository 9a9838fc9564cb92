"""Persisted split lists: a split drawn once is read back from its file ever after.

A drawn split (CamVid's 600/101, SYNTHIA-SF's 1,596/628 and sequence split) must not depend on
listing order, on the RNG of a library version, or on files added to the tree later. So:

- The draw itself depends only on the *set* of stems: stems are ordered by
  ``sha256(f"{seed}:{stem}")`` (a "seeded shuffle" that no library version can change), and the
  first ``n_val`` become the evaluation set. The seed is a fixed protocol seed (``SPLIT_SEED``,
  recorded in the file name), not the training seed, so every training seed sees one test set.
- The lists are written as JSON, ``<dataset>-<protocol>[-seed<seed>].json``, into
  ``<root>/imacsr-splits/`` when the root is writable, else into
  ``$IMACSR_CACHE/splits/<sha256 of the root path, 12 hex>/`` (default cache ``~/.cache/imacsr``).
  The root's copy is looked for first. Once a file exists it is the truth: it is read, checked
  against the tree (a listed stem that is gone is an error), and never redrawn. Delete it to redraw.

File format (keys in this order; "val" is the set the trainer evaluates on, the paper's test set)::

    {"dataset": "camvid", "protocol": "paper", "seed": 0, "rule": "...",
     "train": ["0016E5_08137", ...], "val": ["0001TP_008850", ...]}

Lists keep the drawn order, so ``num_train``/``num_val`` (first N) take a random subset.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from imacsr_cli.data.files import SPLITS_DIR
from imacsr_cli.errors import DataError
from imacsr_cli.rundir.files import write_atomic

SPLIT_SEED = 0  # the protocol seed of every drawn split; part of the file name


@dataclass(frozen=True)
class SplitLists:
    train: list[str]
    val: list[str]
    path: Path | None = None  # the split file (read, written, or where it will be); None for fixed rules
    rule: str = ""  # one line saying how the lists were made
    stored: bool = False  # the file at `path` exists (False: drawn now and not written)

    def get(self, split: str) -> list[str]:
        return self.train if split == "train" else self.val


def seeded_order(stems: list[str], seed: int = SPLIT_SEED) -> list[str]:
    """The stems in a pseudo-random order that depends only on the seed and the stems themselves."""
    return sorted(set(stems), key=lambda s: (hashlib.sha256(f"{seed}:{s}".encode()).hexdigest(), s))


def proportional(n: int, val: int, total: int) -> int:
    """How many of n stems go to evaluation so that exactly `val` of `total` do (e.g. 101 of 701)."""
    return min(max(round(n * val / total), 1), n - 1)


def random_split(stems: list[str], n_val: int, seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    order = seeded_order(stems, seed)
    return order[n_val:], order[:n_val]


def file_name(dataset: str, protocol: str, seed: int | None) -> str:
    return f"{dataset}-{protocol}" + (f"-seed{seed}" if seed is not None else "") + ".json"


def cache_dir() -> Path:
    base = os.environ.get("IMACSR_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "imacsr"


def locations(root: Path, dataset: str, protocol: str, seed: int | None) -> list[Path]:
    """Where the split file may be, in the order they are looked at: next to the data, then the cache."""
    name = file_name(dataset, protocol, seed)
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return [Path(root) / SPLITS_DIR / name, cache_dir() / "splits" / key / name]


def persisted(
    root: Path,
    dataset: str,
    protocol: str,
    seed: int | None,
    stems: list[str],
    draw: Callable[[list[str]], tuple[list[str], list[str]]],
    rule: str,
    write: bool = True,
) -> SplitLists:
    """The split read from its file, or drawn from `stems` (and written, if `write`)."""
    for path in locations(root, dataset, protocol, seed):
        if path.is_file():
            return _read(path, dataset, protocol, seed, set(stems))
    train, val = draw(list(dict.fromkeys(stems)))  # the reader's (sorted, deterministic) order
    if not write:
        return SplitLists(train, val, locations(root, dataset, protocol, seed)[0], rule, stored=False)
    body = {"dataset": dataset, "protocol": protocol, "seed": seed, "rule": rule, "train": train, "val": val}
    text = json.dumps(body, indent=1) + "\n"
    errors = []
    for path in locations(root, dataset, protocol, seed):
        try:
            _write_atomic(path, text)
            return SplitLists(train, val, path, rule, stored=True)
        except OSError as exc:
            errors.append(f"{path.parent}: {exc.strerror or exc}")
    raise DataError(f"{dataset}: cannot write the {protocol} split list ({'; '.join(errors)})")


def pooled_split(root: Path, dataset: str, stems: list[str], test: tuple[int, int], write: bool = True) -> SplitLists:
    """The "paper" split of a dataset whose paper pools every frame: ``test = (n, total)`` says n of its
    total frames are the test set (for another number of stems, the same proportion), drawn by seeded
    shuffle with ``SPLIT_SEED`` and persisted. DataError when there are too few stems for two sets."""
    n_val = proportional(len(stems), *test) if len(stems) > 1 else 0
    if n_val < 1:
        raise DataError(f"{dataset} root {root}: {len(stems)} frames, too few for a train/test split")
    return persisted(
        root, dataset, "paper", SPLIT_SEED, stems,
        lambda pool: random_split(pool, n_val, SPLIT_SEED),
        rule=f"all frames pooled, seeded shuffle (sha256 order, seed {SPLIT_SEED}), "
        f"{len(stems) - n_val} train / {n_val} test",
        write=write,
    )


def _read(path: Path, dataset: str, protocol: str, seed: int | None, present: set[str]) -> SplitLists:
    try:
        body = json.loads(path.read_text())
        train, val = list(body["train"]), list(body["val"])
        if not all(isinstance(s, str) for s in train + val):
            raise TypeError("stems must be strings")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"split file {path}: unreadable ({exc}); delete it to redraw the split") from None
    if (body.get("dataset"), body.get("protocol"), body.get("seed")) != (dataset, protocol, seed):
        raise DataError(
            f"split file {path}: written for dataset={body.get('dataset')!r} protocol={body.get('protocol')!r} "
            f"seed={body.get('seed')!r}, expected {dataset!r} {protocol!r} {seed!r}"
        )
    both = set(train) & set(val)
    if both:
        raise DataError(f"split file {path}: {len(both)} stems in both train and val, e.g. {min(both)}")
    gone = [s for s in train + val if s not in present]
    if gone:
        raise DataError(
            f"split file {path}: {len(gone)} listed stems are not in the tree, e.g. {gone[0]}; "
            f"restore them or delete the file to redraw the split"
        )
    return SplitLists(train, val, path, str(body.get("rule", "")), stored=True)


def _write_atomic(path: Path, text: str) -> None:
    # Two trainers may draw the same split at once; a rename makes either file whole, and both equal.
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda fh: fh.write(text.encode()))
