"""Today's data pipeline (libpng decoding, crop before normalising, one-pass label lookup) gives the
very tensors of the pre-issue-13 pipeline (legacy_pipeline.py), on every dataset layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datahelp import png, spec
from legacy_pipeline import getitem

from imacsr_cli.data import registry
from imacsr_cli.data.fake import write_fake
from imacsr_cli.data.labels import LabelCodec, decode_rgb, read_gray_ids, read_rgb

CASES = [  # (dataset, fake options, data-spec changes)
    ("cityscapes", {}, {"train_size": (24, 40), "eval_size": (40, 80), "scale_range": (0.5, 2.0)}),
    ("cityscapes", {}, {"train_size": (64, 128), "eval_native": True, "scale_range": (0.3, 1.1)}),
    ("camvid", {"layout": "segnet"}, {"train_size": (20, 28), "eval_size": (24, 32), "scale_range": (0.7, 1.9)}),
    ("camvid", {"layout": "full"}, {"train_size": (20, 28), "eval_size": (30, 50), "scale_range": (0.5, 2.0)}),
    ("synthiasf", {"bits": 8}, {"train_size": (16, 30), "eval_size": (18, 32), "scale_range": (0.5, 2.0)}),
    ("synthiasf", {"bits": 16}, {"train_size": (16, 30), "eval_size": (18, 32), "hflip": False}),
]


@pytest.mark.parametrize("dataset,fake,changes", CASES)
def test_new_pipeline_equals_the_legacy_one_exactly(tmp_path, dataset, fake, changes):
    root = tmp_path / dataset
    write_fake(dataset, root, n=6 if dataset == "cityscapes" else 12, size=(97, 53), seed=1, **fake)
    data = spec(dataset, root, **changes)
    for split in ("train", "val"):
        ds = registry.build(data, split)
        ds.set_seed(3)
        for epoch in (1, 2, 3):
            ds.set_epoch(epoch)
            for i in range(len(ds)):
                img, lab = ds[i]
                ref_img, ref_lab = getitem(ds, i)
                assert img.dtype == ref_img.dtype == torch.float32 and lab.dtype == ref_lab.dtype == torch.int64
                assert img.stride() == ref_img.stride() and lab.stride() == ref_lab.stride()
                assert torch.equal(img, ref_img), (split, epoch, i)
                assert torch.equal(lab, ref_lab), (split, epoch, i)
            if split == "val":
                break


def test_decoders_agree_with_pillow_on_every_png_kind(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 13, 3), np.uint8)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (9, 13, 1), np.uint8)], axis=2)
    gray = rng.integers(0, 256, (9, 13), np.uint8)
    for name, array in (("rgb", rgb), ("rgba", rgba), ("gray", gray)):
        path = png(tmp_path / f"{name}.png", array)
        assert np.array_equal(decode_rgb(path), np.asarray(read_rgb(path)))
    from PIL import Image

    Image.fromarray(gray).convert("P").save(tmp_path / "palette.png")  # palette: Pillow's path
    assert np.array_equal(decode_rgb(tmp_path / "palette.png"), np.asarray(read_rgb(tmp_path / "palette.png")))
    assert np.array_equal(read_gray_ids(tmp_path / "gray.png"), gray)


def test_one_pass_lookup_equals_the_table(tmp_path):
    lut = np.array([255, 3, 0, 255, 7], np.uint8)  # 5 known raw values; 5..255 are out of range
    codec = LabelCodec(read_gray_ids, lut)
    raw = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = np.array([lut[v] if v < len(lut) else 255 for v in range(256)], np.uint8).reshape(16, 16)
    assert np.array_equal(codec.to_train(raw), expected)
    assert np.array_equal(codec.to_train(raw.astype(np.int32)), expected)  # the general path agrees


def test_a_corrupt_png_still_fails_with_one_line_naming_it(tmp_path):
    from imacsr_cli.errors import DataError

    path = png(tmp_path / "x.png", np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated inside the image data
    with pytest.raises(DataError, match=r"^image .*x\.png: cannot decode"):
        decode_rgb(path)


@pytest.mark.parametrize("dataset,fake,changes", CASES)
def test_compact_batches_normalised_where_the_model_runs_equal_the_float_batches(tmp_path, dataset, fake, changes):
    # What the trainer's DataLoader carries (uint8 pixels and labels, boxes) and normalises on its
    # device, against the float form collated as before: equal bit for bit, padding and flips included.
    from imacsr_cli.data.transforms import batch_to_device

    root = tmp_path / dataset
    write_fake(dataset, root, n=6 if dataset == "cityscapes" else 12, size=(97, 53), seed=1, **fake)
    data = spec(dataset, root, **changes)
    padded = 0
    for split in ("train", "val"):
        ds = registry.build(data, split)
        ds.set_seed(3)
        for epoch in (1, 2):
            ds.set_epoch(epoch)
            batch = list(range(min(len(ds), 4)))
            ds.compact = False
            images, labels = registry.pad_collate([ds[i] for i in batch])
            ds.compact = True
            compact = registry.pad_collate([ds[i] for i in batch])
            ds.compact = False
            pixels, small_labels, boxes = compact
            assert pixels.dtype == small_labels.dtype == torch.uint8 and boxes.shape == (len(batch), 4)
            on_device = batch_to_device(compact, torch.device("cpu"))
            assert on_device[0].dtype == torch.float32 and on_device[1].dtype == torch.int64
            assert torch.equal(on_device[0], images), (split, epoch)
            assert torch.equal(on_device[1], labels), (split, epoch)
            full = torch.tensor([0, 0, *pixels.shape[-2:]])
            padded += int((boxes != full).any(dim=1).sum())
    if changes.get("eval_native"):  # crops larger than the scaled image, native sizes in one batch
        assert padded > 0


def test_lazily_loaded_modules_behave_as_imported_ones():
    # The dataset modules load numpy and PIL.Image on first use (imacsr_cli/lazy.py); other code that
    # imports them the usual ways (matplotlib: `import PIL` then `PIL.Image`) must see real modules.
    import subprocess
    import sys

    code = ("import imacsr_cli.data.registry as r; r._load_all(); import sys; "
            "assert 'numpy' in sys.modules and 'PIL.Image' in sys.modules; "
            "import PIL; from PIL import Image; import numpy; "
            "assert PIL.Image is Image and Image.new('L', (2, 2)).size == (2, 2); "
            "assert numpy.zeros(3).sum() == 0; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert (out.returncode, out.stdout) == (0, "ok\n"), out.stderr
