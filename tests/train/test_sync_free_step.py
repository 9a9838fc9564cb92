"""The sync-free training step (issue 13): loss terms read once per N steps, the confusion matrix
counted on the device, the fused loss terms, ``train.compile``; on the CPU the results are those of
a read every step, bit for bit. (The fused terms' gradients equal the naive ones to rounding,
tests/train/test_losses.py; a whole run cannot be compared: Adam's first step moves every weight by
about lr · sign(g), so a rounding difference in a near-zero gradient becomes a full step.)"""

import json
from pathlib import Path

import pytest
import torch

from imacsr_cli.models.registry import Point
from imacsr_cli.rundir import codes, read_events
from imacsr_cli.spec.runspec import MethodSpec
from imacsr_cli.train import imacsr
from imacsr_cli.train.imacsr import IMacSR
from imacsr_cli.train.loop import compile_model, loader_workers, run

TINY = {
    "model": {"name": "deeplabv3plus"},
    "data": {"name": "synthetic", "train_size": [32, 32], "eval_size": [32, 32], "num_train": 6, "num_val": 2},
    "train": {"epochs": 2, "batch_size": 2, "seed": 1},
    "points": {"count": 2, "position": "input", "spacing": 2},
}


def _run(tmp_path: Path, name: str) -> tuple[dict, list]:
    d = tmp_path / name
    d.mkdir()
    (d / "spec.json").write_text(json.dumps(TINY))
    assert run(d) == codes.EXIT_OK
    events = read_events(d / "events.jsonl")[0]
    return json.loads((d / "result.json").read_text()), [e for e in events if e.kind == "epoch"]


def test_reading_every_n_steps_changes_no_result(tmp_path, monkeypatch):
    # Reference: a read after every step, as before issue 13.
    monkeypatch.setenv("IMACSR_READ_EVERY", "1")
    ref, ref_epochs = _run(tmp_path, "reference")
    monkeypatch.setenv("IMACSR_READ_EVERY", "1000")  # one read per epoch
    new, new_epochs = _run(tmp_path, "sync_free")
    assert new["confusion_matrix"] == ref["confusion_matrix"]
    assert new["metrics"] == ref["metrics"]
    assert [e.train for e in new_epochs] == [e.train for e in ref_epochs]  # every loss term, exactly


def test_a_nonfinite_loss_read_late_still_names_its_step_and_the_range(tmp_path, monkeypatch):
    monkeypatch.setenv("IMACSR_READ_EVERY", "1000")
    monkeypatch.setenv("IMACSR_TEST_FAULT", "nan@1")
    d = tmp_path / "nan"
    d.mkdir()
    (d / "spec.json").write_text(json.dumps(TINY))
    assert run(d) == codes.EXIT_NONFINITE
    end = read_events(d / "events.jsonl")[0][-1]
    # 6 images / batch 2 = 3 steps, read together at the end of the epoch; step 1 was the first NaN.
    assert end.kind == "end" and end.reason == "nonfinite"
    assert end.message.startswith("loss is nan at epoch 1, step 1 (read steps 1-3) (ce=")
    assert not (d / "result.json").exists()


def test_default_workers_are_the_slots_share_on_cuda_and_none_on_the_cpu(monkeypatch):
    monkeypatch.setenv("IMACSR_THREADS", "3")
    assert loader_workers(-1, torch.device("cuda")) == 3
    assert loader_workers(-1, torch.device("cpu")) == 0
    assert loader_workers(2, torch.device("cpu")) == 2  # an explicit count is kept
    monkeypatch.delenv("IMACSR_THREADS")
    assert loader_workers(-1, torch.device("cuda")) >= 1


class _Tiny(torch.nn.Module):
    def __init__(self, k: int):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = torch.nn.Conv2d(8, k, 1)

    def forward(self, x):
        return self.head(torch.relu(self.b(torch.relu(self.a(x)))))


def test_compiled_network_keeps_the_taps_and_the_loss():
    pytest.importorskip("torch._dynamo")

    def trainee() -> IMacSR:
        torch.manual_seed(0)
        return IMacSR(_Tiny(4), [Point("a", "a", 8, 2), Point("b", "b", 8, 4)], 4, MethodSpec()).train()

    x, y = torch.randn(2, 3, 16, 16), torch.randint(0, 4, (2, 16, 16))
    eager = trainee()
    total, terms = eager.loss(eager(x), y)
    compiled = trainee()
    compile_model(compiled, backend="eager")  # dynamo's graph capture without a C++ toolchain
    c_total, c_terms = compiled.loss(compiled(x), y)
    assert c_terms.keys() == terms.keys()
    torch.testing.assert_close(c_total, total)
    c_total.backward()
    assert all(p.grad is not None for p in compiled.adapters.parameters())  # the taps fed the adapters
