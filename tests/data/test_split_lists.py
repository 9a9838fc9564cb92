"""Drawn splits: deterministic from the set of stems, written once, and the file is the truth after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
from datahelp import spec

from imacsr_cli.data import registry
from imacsr_cli.data.check import check_tree
from imacsr_cli.data.fake import write_fake
from imacsr_cli.data.splits import proportional, seeded_order
from imacsr_cli.errors import DataError


def stems_of(root, split="paper", part="train", **changes):
    return [s.stem for s in registry.build(spec("camvid", root, split=split, **changes), part).samples]


def test_paper_sizes_and_seeded_order():
    assert proportional(701, 101, 701) == 101  # CamVid: 600 / 101
    assert proportional(2224, 628, 2224) == 628  # SYNTHIA-SF: 1,596 / 628
    assert proportional(24, 101, 701) == 3 and proportional(2, 101, 701) == 1
    stems = [f"0001TP_{i:06d}" for i in range(50)]
    assert seeded_order(stems) == seeded_order(list(reversed(stems)))  # listing order is irrelevant
    assert seeded_order(stems, 0) != seeded_order(stems, 1)
    # The order is sha256("<seed>:<stem>"): no RNG, so no library version can change it.
    assert seeded_order(stems)[0] == min(stems, key=lambda s: hashlib.sha256(f"0:{s}".encode()).hexdigest())


def test_split_is_written_next_to_the_data_and_reused(tmp_path, monkeypatch):
    root = tmp_path / "camvid"
    write_fake("camvid", root, n=12, size=(16, 12))
    train = stems_of(root)
    path = root / "imacsr-splits/camvid-paper-seed0.json"
    body = json.loads(path.read_text())
    assert list(body) == ["dataset", "protocol", "seed", "rule", "train", "val"]
    assert (body["dataset"], body["protocol"], body["seed"]) == ("camvid", "paper", 0)
    assert body["train"] == train and len(body["val"]) == 2 and not set(train) & set(body["val"])

    # Listed in another order, the tree gives the same split (and the file is not rewritten).
    path.unlink()
    real_listdir, real_walk = os.listdir, os.walk
    with monkeypatch.context() as m:
        m.setattr(os, "listdir", lambda p: list(reversed(real_listdir(p))))
        m.setattr(os, "walk", lambda p, **kw: ((d, list(reversed(ds)), list(reversed(fs)))
                                               for d, ds, fs in real_walk(p, **kw)))
        assert stems_of(root) == train
    assert json.loads(path.read_text()) == body

    # A frame added later joins neither list: the file is the truth.
    shutil.copy(root / "train/0001TP_006690.png", root / "train/0001TP_007500.png")
    shutil.copy(root / "trainannot/0001TP_006690.png", root / "trainannot/0001TP_007500.png")
    assert stems_of(root) == train and "0001TP_007500" not in stems_of(root, part="val")
    assert check_tree("camvid", root).warnings == [f"1 images are in neither list of {path} (not used)"]

    # Edited by hand, it is still the truth.
    body["train"], body["val"] = body["train"][1:], body["val"] + body["train"][:1]
    path.write_text(json.dumps(body))
    assert stems_of(root) == train[1:]
    assert stems_of(root, part="val")[-1] == train[0]

    # num_train / num_val: the first N of the lists, in their order.
    assert stems_of(root, num_train=3) == train[1:4]
    assert stems_of(root, part="val", num_val=1) == body["val"][:1]

    # A listed frame that is gone is an error, not a silent redraw.
    gone = body["val"][0]
    for group in ("train", "val", "test"):
        (root / group / f"{gone}.png").unlink(missing_ok=True)
        (root / f"{group}annot" / f"{gone}.png").unlink(missing_ok=True)
    with pytest.raises(DataError) as err:
        stems_of(root)
    assert str(err.value) == (f"split file {path}: 1 listed stems are not in the tree, e.g. {gone}; "
                              f"restore them or delete the file to redraw the split")


def test_split_goes_to_the_cache_when_the_root_is_not_writable(tmp_path):
    root = tmp_path / "camvid"
    write_fake("camvid", root, n=12, size=(16, 12))
    (root / "imacsr-splits").write_text("a file where the folder would go: the root copy cannot be written")
    train = stems_of(root)
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    cached = tmp_path / "cache/splits" / key / "camvid-paper-seed0.json"
    assert json.loads(cached.read_text())["train"] == train
    # Read back from the cache, and shared by both layouts of the same frames (keyed by stems only).
    assert stems_of(root) == train
    full = tmp_path / "full"
    write_fake("camvid", full, n=12, size=(16, 12), layout="full")
    assert stems_of(full) == train


def test_a_split_file_for_something_else_is_refused(tmp_path):
    root = tmp_path / "camvid"
    write_fake("camvid", root, n=12, size=(16, 12))
    path = root / "imacsr-splits/camvid-paper-seed0.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"dataset": "camvid", "protocol": "paper", "seed": 1, "train": [], "val": []}))
    with pytest.raises(DataError) as err:
        stems_of(root)
    assert str(err.value) == (f"split file {path}: written for dataset='camvid' protocol='paper' seed=1, "
                              f"expected 'camvid' 'paper' 0")
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"unreadable .*; delete it to redraw the split"):
        stems_of(root)
