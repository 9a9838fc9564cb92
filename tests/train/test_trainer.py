"""The trainer process: files, resume equivalence, failure exits, bad input. Real runs on the CPU."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from imacsr_cli.cli.app import app
from imacsr_cli.rundir import RunPaths, code_version, codes, read_events, read_result
from imacsr_cli.spec import RunSpec, resolve
from imacsr_cli.train.loop import run
from imacsr_cli.train.metrics import dataset_metrics

TINY = {
    "model": {"name": "deeplabv3plus"},
    "data": {"name": "synthetic", "train_size": [32, 32], "eval_size": [32, 32], "num_train": 4, "num_val": 2},
    "train": {"epochs": 2, "batch_size": 2, "seed": 3},
    "points": {"count": 2, "position": "input", "spacing": 2},
}


def _run_dir(tmp_path: Path, name: str, spec: dict = TINY) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "spec.json").write_text(json.dumps(spec))
    return d


def _events(d: Path) -> list:
    return read_events(d / "events.jsonl")[0]


def test_run_writes_every_file_and_a_consistent_result(tmp_path):
    d = _run_dir(tmp_path, "a")
    assert run(d) == 0
    for name in ("spec.json", "events.jsonl", "checkpoint.pt", "result.json", "train.log"):
        assert (d / name).is_file(), name
    result = json.loads((d / "result.json").read_text())
    assert result["run_id"] == resolve(RunSpec.from_dict(TINY)).run_id
    assert result["epochs"] == 2 and result["torch"] and result["device"].startswith("cpu")
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (11, 11) and cm.sum() == 2 * 32 * 32  # every val pixel of the synthetic set is labelled
    # The reported metrics are exactly those of the saved matrix (rows = ground truth).
    again = dataset_metrics(cm)
    for key in ("mIoU", "mF1", "mPrecision", "mRecall"):
        assert result["metrics"]["dataset"][key] == pytest.approx(again[key])
    assert set(result["metrics"]["paper"]) >= {"mIoU", "mF1", "mPrecision", "mRecall", "per_class"}
    # The run directory's reader accepts it, and it names the code that trained it (this checkout).
    typed = read_result(RunPaths(d), result["run_id"])
    assert typed.code == code_version() and typed.code.imacsr  # commit: None outside a git checkout
    assert typed.dataset.means["mIoU"] == result["metrics"]["dataset"]["mIoU"]
    kinds = [e.kind for e in _events(d)]
    assert kinds[0] == "heartbeat" and _events(d)[0].phase == "startup"  # the first event: start-up
    assert [k for k in kinds if k != "heartbeat"][0] == "start"
    assert kinds[-1] == "end" and kinds.count("epoch") == 2
    epoch = next(e for e in _events(d) if e.kind == "epoch")
    losses = {k for k in epoch.train if not k.startswith("diag/")}
    assert losses == {"loss", "ce", "mi/stem", "ne/stem", "mi/layer1.1", "ne/layer1.1"}
    assert {k for k in epoch.train if k.startswith("diag/")} == {
        f"diag/{q}/{p}" for q in ("entropy", "feature_norm", "gamma_norm") for p in ("stem", "layer1.1")
    } | {"diag/grad_norm2", "diag/steps"}
    # A second start does nothing: result.json is the truth.
    assert run(d) == 0 and [e.kind for e in _events(d)] == kinds
    # Without result.json, the final checkpoint (weights only) is evaluated again: same result.
    (d / "result.json").unlink()
    assert run(d) == 0
    again_result = json.loads((d / "result.json").read_text())
    assert again_result["confusion_matrix"] == result["confusion_matrix"]
    assert again_result["metrics"] == result["metrics"]


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, monkeypatch):
    straight = _run_dir(tmp_path, "straight")
    assert run(straight) == 0

    resumed = _run_dir(tmp_path, "resumed")
    monkeypatch.setenv("IMACSR_TEST_FAULT", "crash@2:once")
    assert run(resumed) == codes.EXIT_CRASH  # dies at the start of epoch 2, after epoch 1's checkpoint
    assert not (resumed / "result.json").exists()
    assert "injected crash" in (resumed / "train.log").read_text()
    assert run(resumed) == 0  # the marker makes the fault fire once
    starts = [e for e in _events(resumed) if e.kind == "start"]
    assert [s.resumed_from for s in starts] == [0, 1]

    a = json.loads((straight / "result.json").read_text())
    b = json.loads((resumed / "result.json").read_text())
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert a["metrics"] == b["metrics"]


def test_nonfinite_loss_stops_with_reason(tmp_path, monkeypatch):
    d = _run_dir(tmp_path, "nan")
    monkeypatch.setenv("IMACSR_TEST_FAULT", "nan@1")
    assert run(d) == codes.EXIT_NONFINITE
    end = _events(d)[-1]
    assert end.kind == "end" and end.reason == "nonfinite" and end.message.startswith("loss is nan at epoch 1, step 1")
    assert not (d / "result.json").exists()


def test_second_trainer_on_a_locked_dir_exits_5(tmp_path):
    import fcntl

    d = _run_dir(tmp_path, "locked")
    with open(d / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        assert run(d) == codes.EXIT_LOCKED
    assert not (d / "events.jsonl").exists()


def test_sigterm_stops_the_process_with_exit_6_and_keeps_the_checkpoint(tmp_path):
    d = _run_dir(tmp_path, "term")
    # hang@2: after epoch 1's checkpoint and event the trainer waits at the start of epoch 2 until it is
    # signalled, however slow the machine is (a timed fault could finish the run before the signal).
    env = {**os.environ, "IMACSR_TEST_FAULT": "hang@2"}
    proc = subprocess.Popen([sys.executable, "-m", "imacsr_cli.train", str(d)], env=env)
    deadline = time.monotonic() + 600  # a bound on a hang, not a speed requirement
    while not any(e.kind == "epoch" for e in _events(d)):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=600) == codes.EXIT_INTERRUPTED
    end = _events(d)[-1]
    assert (end.status, end.reason, end.message, end.signal) == ("interrupted", "interrupted", "received SIGTERM",
                                                                 "SIGTERM")
    assert (d / "checkpoint.pt").is_file() and not (d / "result.json").exists()


BAD = [
    ("[model]\nnmae = 'x'\n", "unknown key 'model.nmae'; expected one of name, variant, weights"),
    ("[train]\nepochs = 'two'\n", "key 'train.epochs': expected an integer, got str 'two'"),
    ("[train]\nepochs = [1, 2]\n", "key 'train.epochs': expected an integer, got a list [1, 2]"),
    ("[model]\nname = 'unet'\n", "key 'model.name': unknown model 'unet'; expected one of"),
    ("[data]\nname = 'kitti'\n", "key 'data.name': unknown dataset 'kitti'; expected one of"),
    ("[points]\ncount = 5\nspacing = 3\n",
     "key 'points': 5 points at spacing 3 span 13 positions but deeplabv3plus (smp) has 11 candidate points; "
     "at spacing 3 at most 4 fit"),
    ("[method]\nname = 'deep'\n", "key 'method.name': expected one of 'imacsr', 'conventional', got str 'deep'"),
]


@pytest.mark.parametrize("toml,message", BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, toml, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(toml)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(out)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {spec}: {message}")
    assert result.stderr.count("\n") == 1
    assert not out.exists()


def test_toml_syntax_error_names_file_and_line(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text("[train]\nepochs = \n")
    result = CliRunner().invoke(app, ["train", str(spec)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {spec}: TOML syntax error: ") and "line 2" in result.stderr


def test_models_json_lists_deeplab_with_its_size_and_points():
    result = CliRunner().invoke(app, ["models", "--json", "--classes", "19"])
    assert result.exit_code == 0
    rows = {(r["model"], r["variant"]): r for r in json.loads(result.stdout)}
    smp = rows[("deeplabv3plus", "smp")]
    assert smp["parameters"] == 12_333_923 and smp["default"]
    assert rows[("deeplabv3plus", "paper")]["parameters"] == 16_607_667
    assert [p["name"] for p in smp["points"]] == [
        "stem", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1",
        "aspp", "decoder",
    ]
    assert smp["points"][7] == {"name": "layer4.0", "channels": 512, "stride": 16}
