"""data.cache: decoded pairs kept in a folder give the very samples decoding gives, are read instead
of the files once written, follow every change of a file, survive a broken entry, and leave the run
id alone."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch
from datahelp import cityscapes_tree, png, spec, stripes

from imacsr_cli.data import registry
from imacsr_cli.data.fake import write_fake
from imacsr_cli.errors import DataError
from imacsr_cli.spec import RunSpec, resolve


def _samples(ds, epochs=(1, 2)) -> list[tuple[torch.Tensor, ...]]:
    out = []
    for epoch in epochs:
        ds.set_epoch(epoch)
        out += [ds[i] for i in range(len(ds))]
    return out


def _entries(folder) -> list[str]:
    return sorted(p.name.split(".", 1)[1] for p in folder.rglob("*.npy"))


@pytest.mark.parametrize("dataset,fake", [("cityscapes", {}), ("camvid", {"layout": "full"}),
                                          ("synthiasf", {"bits": 16})])
@pytest.mark.parametrize("resize", ["whole", "window"])
def test_cached_samples_equal_decoded_ones_bit_for_bit(tmp_path, dataset, fake, resize):
    root = tmp_path / dataset
    write_fake(dataset, root, n=4 if dataset == "cityscapes" else 8, size=(97, 53), seed=2, **fake)
    plain = spec(dataset, root, train_size=(24, 40), eval_size=(30, 50), resize=resize)
    cached = dataclasses.replace(plain, cache=str(tmp_path / "cache"))
    for split in ("train", "val"):
        for compact in (False, True):
            ref, ds = registry.build(plain, split), registry.build(cached, split)
            ref.compact = ds.compact = compact
            ref.set_seed(5), ds.set_seed(5)
            first, again = _samples(ds), _samples(ds)  # the first epoch writes, the others read
            for a, b, c in zip(_samples(ref), first, again):
                assert all(torch.equal(x, y) and torch.equal(x, z) for x, y, z in zip(a, b, c))
                assert all(x.dtype == y.dtype and x.stride() == y.stride() for x, y in zip(a, b))
    n = len(registry.build(plain, "train")) + len(registry.build(plain, "val"))
    assert _entries(tmp_path / "cache") == sorted(["pixels.npy", "ids.npy"] * n)


def _tree(tmp_path, values):
    """One Cityscapes training pair (and a val pair) whose label holds the label ids ``values``."""
    lab = stripes(values, 8, 16)
    return cityscapes_tree(tmp_path / "cs", {"train": {"aachen_000000_000019": lab},
                                             "val": {"lindau_000000_000019": lab}})


def _ids(ds) -> np.ndarray:
    return np.asarray(ds.read(0)[1])


def test_a_written_entry_is_read_instead_of_the_file(tmp_path):
    root = _tree(tmp_path, [7, 8])  # road, sidewalk: training ids 0, 1
    data = spec("cityscapes", root, cache=str(tmp_path / "cache"))
    assert _ids(registry.build(data, "train")).tolist() == [[0] * 16] * 4 + [[1] * 16] * 4
    label = next((root / "gtFine" / "train").rglob("*_labelIds.png"))
    st = os.stat(label)
    # Garbage of the same size and modification time: a decode would fail, a cache hit does not.
    label.write_bytes(b"x" * st.st_size)
    os.utime(label, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(DataError):
        _ids(registry.build(dataclasses.replace(data, cache=""), "train"))
    assert _ids(registry.build(data, "train")).tolist() == [[0] * 16] * 4 + [[1] * 16] * 4


def test_an_edited_file_or_another_class_set_is_another_entry(tmp_path):
    root = _tree(tmp_path, [7, 8])
    data = spec("cityscapes", root, cache=str(tmp_path / "cache"))
    assert set(_ids(registry.build(data, "train")).ravel()) == {0, 1}
    label = next((root / "gtFine" / "train").rglob("*_labelIds.png"))
    png(label, stripes([26, 11], 8, 16))  # car, building: training ids 13, 2
    os.utime(label, ns=(os.stat(label).st_atime_ns, os.stat(label).st_mtime_ns + 10**9))  # a visibly newer file
    assert _ids(registry.build(data, "train")).tolist() == [[13] * 16] * 4 + [[2] * 16] * 4
    assert len(_entries(tmp_path / "cache")) == 4  # the old entry stays, never read again


def test_another_label_table_is_another_entry(tmp_path):
    root = tmp_path / "synthia"
    write_fake("synthiasf", root, n=8, size=(40, 24), seed=1, bits=8)
    data = spec("synthiasf", root, cache=str(tmp_path / "cache"))
    other = dataclasses.replace(data, classes=next(c for c in registry.get("synthiasf").class_sets
                                                    if c != data.classes))
    for d in (data, other):
        ds, ref = registry.build(d, "train"), registry.build(dataclasses.replace(d, cache=""), "train")
        for i in range(len(ds)):
            assert np.array_equal(ds.read(i)[1], ref.read(i)[1])


def test_a_broken_entry_is_decoded_and_written_again(tmp_path):
    root = _tree(tmp_path, [7, 8])
    data = spec("cityscapes", root, cache=str(tmp_path / "cache"))
    ds = registry.build(data, "train")
    want = [np.array(a) for a in ds.read(0)]
    (ids,) = (tmp_path / "cache").rglob("*.ids.npy")
    (pixels,) = (tmp_path / "cache").rglob("*.pixels.npy")
    for broken, content in ((pixels, pixels.read_bytes()[:40]), (ids, b"not an array")):
        broken.write_bytes(content)
        got = registry.build(data, "train").read(0)
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
        assert np.array_equal(np.load(broken), want[1] if broken == ids else want[0])  # rewritten
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_a_cache_folder_that_cannot_be_written_is_a_one_line_error(tmp_path):
    root = _tree(tmp_path, [7, 8])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DataError) as err:
        registry.build(spec("cityscapes", root, cache=str(blocker / "cache")), "train")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"data.cache {blocker / 'cache'}: cannot write there")
    assert 'data.cache = ""' in message


def test_the_cache_is_not_part_of_the_run_id():
    base = {"data": {"name": "cityscapes", "root": "/data/cs"}}
    with_cache = {"data": {"name": "cityscapes", "root": "/data/cs", "cache": "/scratch/decoded"}}
    assert resolve(RunSpec.from_dict(base)).run_id == resolve(RunSpec.from_dict(with_cache)).run_id
