"""`imacsr data fake` + `imacsr data check` round trips, error exits, and 1 CPU epoch on each fake tree."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from imacsr_cli.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    ("dataset", "options", "layout", "split"),
    [
        ("cityscapes", [], "fine", "split standard: train 4, val 4"),
        ("camvid", ["--layout", "segnet"], "segnet", "split paper: train 21, val 3"),
        ("camvid", ["--layout", "full"], "full", "split paper: train 21, val 3"),
        ("synthiasf", ["--bits", "8"], "sf", "split paper: train 17, val 7"),
        ("synthiasf", ["--bits", "16"], "sf", "split paper: train 17, val 7"),
    ],
)
def test_fake_then_check(tmp_path, dataset, options, layout, split):
    out = tmp_path / "tree"
    result = invoke("data", "fake", "--dataset", dataset, "--out", out, "--size", "48x32", *options)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {dataset} (") and str(out) in result.output

    result = invoke("data", "check", out, "--dataset", dataset)
    assert result.exit_code == 0, result.output
    assert f"(layout {layout})" in result.output
    assert split in result.output
    assert "sizes 48x32 ×" in result.output
    assert "usable: yes" in result.output

    result = invoke("data", "check", out, "--dataset", dataset, "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["usable"] is True and report["problems"] == []
    assert set(report["image_sizes"]) == {"48x32"}
    assert sum(report["histogram"].values()) > 0 and report["ignored_pixels"] > 0  # fakes include void
    assert report["out_of_range"] == {} and report["stray"] == [] and report["unpaired"] == []
    assert not (out / "imacsr-splits").exists()  # check writes nothing


def test_check_of_a_broken_tree_exits_1(tmp_path):
    out = tmp_path / "sf"
    assert invoke("data", "fake", "--dataset", "synthiasf", "--out", out, "--n", "4").exit_code == 0
    (out / "SEQ2/GTLeft/0000000.png").unlink()
    result = invoke("data", "check", out, "--dataset", "synthiasf", "--classes", "synthia22")
    assert result.exit_code == 1
    assert "usable: NO (1 problems)" in result.output
    assert "synthiasf: image" in result.output and "has no label" in result.output
    assert "unpaired files (1):" in result.output and "22 classes" in result.output

    missing = tmp_path / "missing"
    result = invoke("data", "check", missing, "--dataset", "camvid", "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["problems"] == [f"camvid root {missing}: does not exist (expected a directory with train, "
                                                     "trainannot, val, valannot, test, testannot (SegNet layout) or "
                                                     "<stem>.png images with <stem>_L.png colour labels "
                                                     "(full-resolution layout) under the root)"]


def test_bad_options_are_one_line_errors(tmp_path):
    cases = [
        (["data", "check", tmp_path, "--dataset", "mapillary"], "error: key 'data.name': unknown dataset 'mapillary'"),
        (["data", "check", tmp_path, "--dataset", "synthetic"],
         "error: dataset 'synthetic' is not read from disk; data check works on cityscapes, camvid, synthiasf"),
        (["data", "check", tmp_path, "--dataset", "camvid", "--split", "random"],
         "error: dataset 'camvid' has no split 'random'; expected one of paper, segnet, segnet-val"),
        (["data", "check", tmp_path, "--dataset", "synthiasf", "--classes", "synthia16"],
         "error: dataset 'synthiasf' has no class set 'synthia16'; expected one of cityscapes19, synthia22, synthia23"),
        (["data", "fake", "--dataset", "camvid", "--out", tmp_path / "x", "--size", "big"],
         "error: --size 'big': expected WxH, e.g. 128x64"),
        (["data", "fake", "--dataset", "camvid", "--out", tmp_path / "x", "--layout", "kaggle"],
         "error: fake: --layout 'kaggle': expected segnet or full"),
        (["data", "fake", "--dataset", "cityscapes", "--out", tmp_path],
         f"error: fake: {tmp_path} exists and is not an empty folder (refusing to write into it)"),
    ]
    (tmp_path / "keep.txt").write_text("x")
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.strip().startswith(message), (args, result.output)


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "options"), [("cityscapes", []), ("camvid", ["--layout", "full"]),
                                                  ("synthiasf", ["--bits", "16"])])
def test_one_cpu_epoch_on_each_fake_tree(tmp_path, dataset, options):
    tree = tmp_path / "tree"
    assert invoke("data", "fake", "--dataset", dataset, "--out", tree, "--size", "96x64", *options).exit_code == 0
    spec = tmp_path / "run.toml"
    spec.write_text(
        f'[data]\nname = "{dataset}"\nroot = "{tree}"\ntrain_size = [64, 64]\neval_size = [64, 64]\n'
        f"num_train = 4\nnum_val = 2\n[train]\nepochs = 1\nbatch_size = 2\n"
    )
    result = invoke("train", spec, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "succeeded: mIoU" in result.output
    metrics = json.loads((tmp_path / "run/result.json").read_text())["metrics"]["dataset"]
    assert 0.0 <= metrics["mIoU"] <= 1.0
