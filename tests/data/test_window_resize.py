"""data.resize = "window": only the crop's window is resampled, from the same draws as "whole".

The two differ only by how Pillow places samples (a box's offset is float32): image pixels by at most
2 levels of 255, and a label row or column only where its nearest-neighbour sample sits exactly on
the boundary between two source pixels (a tie that rounding can break either way)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imacsr_cli.data.registry import IMAGENET_STD
from imacsr_cli.data.transforms import TrainTransform, sample_rng
from imacsr_cli.errors import SpecError
from imacsr_cli.spec import RunSpec, resolve

H, W = 96, 192  # the source image
CROP = (32, 64)
BASE = (48, 96)  # scales 0.5-2 of it: 24x48 (smaller than the crop: padded) to 96x192


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (12, 24, 3), np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((W, H), Image.BILINEAR))
    label = np.kron(rng.integers(0, 19, (12, 24)), np.ones((8, 8), int)).astype(np.uint8)
    return image, label


def _draws(i: int) -> tuple[int, int, int, int, bool]:
    """The scaled size and crop offset of sample i, drawn as TrainTransform draws them."""
    rng = sample_rng(0, 1, i)
    scale = rng.uniform(0.5, 2.0)
    fy, fx = rng.random(2)
    flip = rng.random() < 0.5
    h, w = round(BASE[0] * scale), round(BASE[1] * scale)
    return h, w, int(fy * (max(h - CROP[0], 0) + 1)), int(fx * (max(w - CROP[1], 0) + 1)), flip


def _ties(n: int, offset: int, src: int, out: int) -> set[int]:
    """Output positions (crop coordinates) whose nearest sample (k + 0.5) * src/out is a pixel boundary."""
    return {k for k in range(n) if abs((offset + k + 0.5) * src / out - round((offset + k + 0.5) * src / out)) < 1e-6}


@pytest.mark.parametrize("i", range(60))
def test_a_window_is_the_whole_image_result_up_to_sample_rounding(i):
    image, label = _scene()
    whole = TrainTransform(CROP, (0.5, 2.0), True, BASE)(image, label, sample_rng(0, 1, i))
    window = TrainTransform(CROP, (0.5, 2.0), True, BASE, window=True)(image, label, sample_rng(0, 1, i))
    assert whole[0].shape == window[0].shape == (3, *CROP) and whole[1].shape == window[1].shape == CROP
    levels = (whole[0] - window[0]).abs() * torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
    assert levels.max() <= 2 + 1e-3 and levels.mean() < 0.25

    h, w, top, left, flip = _draws(i)
    rows, cols = min(CROP[0], h - top), min(CROP[1], w - left)
    lw, lv = whole[1].numpy(), window[1].numpy()
    if flip:
        lw, lv = lw[:, ::-1], lv[:, ::-1]
    assert (lw[rows:] == 255).all() and (lv[rows:] == 255).all()  # the same padding
    assert (lw[:, cols:] == 255).all() and (lv[:, cols:] == 255).all()
    tie_rows, tie_cols = _ties(rows, top, H, h), _ties(cols, left, W, w)
    keep_r = [r for r in range(rows) if r not in tie_rows]
    keep_c = [c for c in range(cols) if c not in tie_cols]
    assert np.array_equal(lw[np.ix_(keep_r, keep_c)], lv[np.ix_(keep_r, keep_c)])


def test_at_the_source_size_a_window_is_the_plain_crop():
    image, label = _scene()
    t = TrainTransform((40, 70), (1.0, 1.0), False, None, window=True)  # base = the image's own size
    img, lab = t(image, label, sample_rng(3, 0, 0))
    rng = sample_rng(3, 0, 0)
    rng.uniform(1.0, 1.0)
    fy, fx = rng.random(2)
    top, left = int(fy * (H - 40 + 1)), int(fx * (W - 70 + 1))
    assert torch.equal(lab, torch.from_numpy(label[top : top + 40, left : left + 70].astype(np.int64)))
    expected = TrainTransform((40, 70), (1.0, 1.0), False, None)(image, label, sample_rng(3, 0, 0))[0]
    assert torch.equal(img, expected)


def _resolved(**data) -> RunSpec:
    return resolve(RunSpec.from_dict({"data": data}))


def test_the_key_is_in_the_hash_only_where_it_changes_training(tmp_path):
    real = {"name": "cityscapes", "root": str(tmp_path)}
    assert _resolved(**real).run_id == _resolved(**real, resize="whole").run_id  # the legacy value
    assert _resolved(**real).run_id != _resolved(**real, resize="window").run_id
    # generated scenes are never resized: the key changes nothing, so not the id either
    assert _resolved(name="synthetic", resize="window").run_id == _resolved(name="synthetic").run_id
    assert '"resize"' not in _resolved(**real).canonical_json()
    assert '"resize": "window"' in _resolved(**real, resize="window").canonical_json().replace('":"', '": "')


def test_an_unknown_resize_mode_is_a_one_line_error():
    with pytest.raises(SpecError) as err:
        RunSpec.from_dict({"data": {"resize": "crop"}})
    assert "data.resize" in str(err.value) and "whole" in str(err.value) and "\n" not in str(err.value)
