"""The trainer against faults in its own directory: a foreign or broken result.json or checkpoint, a
lost or torn events.jsonl, a SIGKILL between an epoch's record and its checkpoint, a stopped lock
holder, an all-void batch. Real trainers (in this process or as subprocesses), real signals, real files."""

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from imacsr_cli.rundir import EventWriter, codes as errors
from imacsr_cli.spec import RunSpec, resolve
from imacsr_cli.train.imacsr import IMacSR
from imacsr_cli.train.loop import run, train_one_epoch

TINY = {
    "model": {"name": "deeplabv3plus"},
    "data": {"name": "synthetic", "train_size": [32, 32], "eval_size": [32, 32], "num_train": 4, "num_val": 2},
    "train": {"epochs": 2, "batch_size": 2, "seed": 3},
    "points": {"count": 2, "position": "input", "spacing": 2},
}
RUN_ID = resolve(RunSpec.from_dict(TINY)).run_id


def _run_dir(root: Path, name: str, spec: dict = TINY) -> Path:
    d = root / name
    d.mkdir()
    (d / "spec.json").write_text(json.dumps(spec))
    return d


def _events(d: Path) -> list[dict]:
    """events.jsonl as written (dicts), whole lines only."""
    path = d / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a torn line: readers skip it (rundir.read_events does too)
            continue
    return out


def _kinds(d: Path) -> list[str]:
    return [e["event"] for e in _events(d)]


def _result(d: Path) -> dict:
    return json.loads((d / "result.json").read_text())


def _trainer(d: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "imacsr_cli.train", str(d)], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """An undisturbed run of TINY: what every disturbed run must end up equal to."""
    d = _run_dir(tmp_path_factory.mktemp("straight"), "straight")
    assert run(d) == 0
    return d


def _same_training(a: dict, b: dict) -> None:
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert a["metrics"] == b["metrics"]
    strip = lambda h: [{k: r[k] for k in ("epoch", "train", "val", "lr")} for r in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])


# ---- result.json ---------------------------------------------------------------------------------


def test_result_keeps_the_history_of_every_epoch(straight):
    result = _result(straight)
    epochs = [e for e in _events(straight) if e["event"] == "epoch"]
    assert [r["epoch"] for r in result["history"]] == [1, 2]
    for record, event in zip(result["history"], epochs):
        assert record["train"] == event["train"] and record["val"] == event["val"] and record["lr"] == event["lr"]


_MEANS = {"mIoU": 0.9, "mF1": 0.9, "mPrecision": 0.9, "mRecall": 0.9}


@pytest.mark.parametrize("content, problem", [
    ("", ": not JSON"),
    ("{\"run_id\": ", ": not JSON"),
    ("[1, 2]", ": expected a JSON object"),
    (json.dumps({"run_id": "0123456789ab", "metrics": {"dataset": _MEANS}, "confusion_matrix": [], "epochs": 2}),
     f": key 'run_id': expected {RUN_ID!r}, got '0123456789ab' (a foreign result)"),
    (json.dumps({"run_id": RUN_ID}), ": key 'metrics.dataset': missing"),
])
def test_a_result_that_is_not_this_runs_is_refused_and_left_as_is(tmp_path, content, problem):
    d = _run_dir(tmp_path, "foreign")
    (d / "result.json").write_text(content)
    assert run(d) == errors.EXIT_BAD_RESULT
    end = _events(d)[-1]
    assert (end["event"], end["status"], end["reason"]) == ("end", "failed", "bad_result")
    assert f"result.json{problem}" in end["message"]
    assert f"move it out of the run directory, then retry the run (imacsr runs retry {RUN_ID})" in end["message"]
    assert (d / "result.json").read_text() == content  # nothing of the user's is destroyed
    assert not (d / "checkpoint.pt").exists()  # and nothing was trained


def test_this_runs_result_still_means_nothing_to_do(straight, tmp_path):
    d = tmp_path / "again"
    shutil.copytree(straight, d)
    before = (d / "events.jsonl").read_bytes()
    assert run(d) == 0
    assert (d / "events.jsonl").read_bytes() == before


# ---- checkpoint.pt -------------------------------------------------------------------------------


def _one_epoch_then_crash(d: Path, monkeypatch) -> None:
    monkeypatch.setenv("IMACSR_TEST_FAULT", "crash@2:once")
    assert run(d) == errors.EXIT_CRASH  # epoch 1's checkpoint is on disk
    monkeypatch.delenv("IMACSR_TEST_FAULT")


def test_a_truncated_checkpoint_is_set_aside_and_the_run_restarts_from_scratch(straight, tmp_path, monkeypatch):
    d = _run_dir(tmp_path, "trunc")
    _one_epoch_then_crash(d, monkeypatch)
    whole = (d / "checkpoint.pt").read_bytes()
    (d / "checkpoint.pt").write_bytes(whole[: len(whole) // 2])
    assert run(d) == 0
    (aside,) = d.glob("checkpoint.pt.bad-*")
    assert aside.read_bytes() == whole[: len(whole) // 2]  # kept for inspection, byte for byte
    ev = _events(d)
    (note,) = [e for e in ev if e["event"] == "checkpoint_set_aside"]
    assert note["path"] == str(aside) and note["problem"].startswith("does not load")
    assert "the run starts from scratch" in note["message"]
    assert [e["resumed_from"] for e in ev if e["event"] == "start"] == [0, 0]
    _same_training(_result(d), _result(straight))


def test_a_checkpoint_of_another_run_is_set_aside(straight, tmp_path, monkeypatch):
    other_spec = copy.deepcopy(TINY)
    other_spec["train"]["seed"] = 4
    other = _run_dir(tmp_path, "other", other_spec)
    _one_epoch_then_crash(other, monkeypatch)
    d = _run_dir(tmp_path, "mine")
    shutil.copy(other / "checkpoint.pt", d / "checkpoint.pt")
    assert run(d) == 0
    (note,) = [e for e in _events(d) if e["event"] == "checkpoint_set_aside"]
    other_id = resolve(RunSpec.from_dict(other_spec)).run_id
    assert note["problem"] == f"belongs to run {other_id}, not {RUN_ID}"
    assert len(list(d.glob("checkpoint.pt.bad-*"))) == 1
    _same_training(_result(d), _result(straight))


# ---- epoch records -------------------------------------------------------------------------------


def test_sigkill_between_an_epochs_record_and_its_checkpoint_loses_and_repeats_nothing(straight, tmp_path):
    d = _run_dir(tmp_path, "kill")
    p = _trainer(d, IMACSR_TEST_FAULT="kill@2:once")
    assert p.wait(timeout=600) == -signal.SIGKILL
    # Epoch 2's record is on disk although its checkpoint is not.
    assert [e["epoch"] for e in _events(d) if e["event"] == "epoch"] == [1, 2]
    assert torch.load(d / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert run(d) == 0
    ev = _events(d)
    assert [e["resumed_from"] for e in ev if e["event"] == "start"] == [0, 1]
    assert [e["epoch"] for e in ev if e["event"] == "epoch"] == [1, 2]  # epoch 2 trained again, recorded once
    _same_training(_result(d), _result(straight))


def test_sigkill_before_the_first_checkpoint_repeats_no_record(straight, tmp_path):
    # No checkpoint at all yet: the run starts again from scratch, and epoch 1's record stays the one
    # (the kill -9 drill once found epoch 1 three times in events.jsonl).
    d = _run_dir(tmp_path, "kill1")
    p = _trainer(d, IMACSR_TEST_FAULT="kill@1:once")
    assert p.wait(timeout=600) == -signal.SIGKILL
    assert [e["epoch"] for e in _events(d) if e["event"] == "epoch"] == [1]
    assert not (d / "checkpoint.pt").exists()
    assert run(d) == 0
    ev = _events(d)
    assert [e["resumed_from"] for e in ev if e["event"] == "start"] == [0, 0]
    assert [e["epoch"] for e in ev if e["event"] == "epoch"] == [1, 2]  # epoch 1 trained again, recorded once
    _same_training(_result(d), _result(straight))


def test_a_torn_last_line_of_events_costs_no_record(straight, tmp_path, monkeypatch):
    d = _run_dir(tmp_path, "torn")
    _one_epoch_then_crash(d, monkeypatch)
    with open(d / "events.jsonl", "a") as fh:
        fh.write('{"event": "heartbeat", "ti')  # a kill mid-write
    assert run(d) == 0
    ev = _events(d)
    assert [e["event"] for e in ev].count("start") == 2  # the line after the torn one is whole
    assert [e["epoch"] for e in ev if e["event"] == "epoch"] == [1, 2]
    _same_training(_result(d), _result(straight))


def test_deleted_events_leave_the_history_in_the_checkpoint_and_result(straight, tmp_path, monkeypatch):
    d = _run_dir(tmp_path, "deleted")
    _one_epoch_then_crash(d, monkeypatch)
    (d / "events.jsonl").unlink()
    assert run(d) == 0
    assert [e["epoch"] for e in _events(d) if e["event"] == "epoch"] == [2]  # epoch 1's event is gone...
    _same_training(_result(d), _result(straight))  # ...but not its record


# ---- the lock ------------------------------------------------------------------------------------


def test_a_trainer_that_fails_to_get_the_lock_leaves_the_holders_pid(tmp_path):
    d = _run_dir(tmp_path, "held")
    holder = _trainer(d, IMACSR_TEST_FAULT="stall@1")  # holds the lock, heartbeating, until released
    try:
        while not any(e.get("phase") == "startup" for e in _events(d)):
            assert holder.poll() is None
            time.sleep(0.1)
        os.kill(holder.pid, signal.SIGSTOP)  # a stray holder that makes no progress
        assert (d / ".lock").read_text() == f"{holder.pid}\n"
        for _ in range(3):
            assert run(d) == errors.EXIT_LOCKED
        assert (d / ".lock").read_text() == f"{holder.pid}\n"  # still there for a scheduler to signal
        # The one end that writes nothing into RUN_DIR's files says why on stdout (trainer.out).
        loser = subprocess.run([sys.executable, "-m", "imacsr_cli.train", str(d)], capture_output=True, text=True,
                               timeout=600)
        assert (loser.returncode, loser.stdout) == (
            errors.EXIT_LOCKED, f"{d / '.lock'}: held by another trainer (pid {holder.pid}); exit 5 (locked)\n")
    finally:
        holder.kill()
        holder.wait()
    code = run(d)
    # A loaded CI run once got EXIT_LOCKED here, with the holder reaped: name who has the file open.
    assert code == 0, f"exit {code}; {d / '.lock'} is open in {_openers(d / '.lock')}"  # the lock died with its holder


def _openers(path: Path) -> list[str]:
    """The processes that have ``path`` open, as "pid (command line)", from /proc."""
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == str(path) for fd in fd_dir.iterdir()):
                cmd = (fd_dir.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{fd_dir.parent.name} ({cmd.strip()[:120]})")
        except OSError:  # a process that ended meanwhile, or one we may not look into
            continue
    return found


# ---- an all-void batch ---------------------------------------------------------------------------


class _Batches(torch.utils.data.Dataset):
    """Hand-made samples: random images; labels all void (255) where ``void`` says so, else class 1."""

    def __init__(self, void: list[bool]):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(len(void), 3, 32, 32, generator=g)
        self.labels = [torch.full((32, 32), 255 if v else 1, dtype=torch.int64) for v in void]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i]


def _trainee(spec: RunSpec) -> tuple[IMacSR, torch.optim.Optimizer, object, object]:
    from imacsr_cli.models import registry

    torch.manual_seed(0)
    model = registry.build("deeplabv3plus", spec.model.variant, 11)
    points = [p for p in registry.points("deeplabv3plus", spec.model.variant) if p.name in spec.points.names]
    trainee = IMacSR(model, points, 11, spec.method, 255)
    optimizer = torch.optim.Adam(trainee.parameters(), lr=spec.optim.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    return trainee, optimizer, schedule, scaler


def test_an_all_void_batch_weighs_nothing_and_is_no_divergence(tmp_path):
    spec = resolve(RunSpec.from_dict({**TINY, "train": {"epochs": 1, "batch_size": 2, "seed": 3}}))
    events = EventWriter(tmp_path / "events.jsonl")
    # The cross-entropy of a batch with no labelled pixel is 0/0: what made the run abort as non-finite.
    assert torch.isnan(torch.nn.functional.cross_entropy(torch.zeros(1, 11, 4, 4), torch.full((1, 4, 4), 255),
                                                         ignore_index=255))

    # Only void batches: no update at all, and no NaN.
    trainee, optimizer, schedule, scaler = _trainee(spec)
    before = copy.deepcopy(trainee.state_dict())
    losses = train_one_epoch(trainee, optimizer, schedule, scaler, _Batches([True] * 4), spec, 1,
                             torch.device("cpu"), None, events, None)
    assert losses == {}
    after = trainee.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert schedule.last_epoch == 2  # the schedule counts every batch, void or not

    # The first batch void, the second labelled (the trainer's epoch order is a function of seed and
    # epoch): the epoch's loss is the labelled batch's loss alone, as the untouched model computes it.
    order = torch.randperm(4, generator=torch.Generator().manual_seed(spec.train.seed * 100_003 + 1)).tolist()
    void = [i in order[:2] for i in range(4)]
    data = _Batches(void)
    trainee, optimizer, schedule, scaler = _trainee(spec)
    reference = _trainee(spec)[0].train()  # the same weights (same seed), untouched
    torch.manual_seed(7)  # the same dropout draws: a loader's iterator takes one draw, then the forward
    (images, labels), = [b for b in torch.utils.data.DataLoader(data, batch_size=2, sampler=order)
                         if not b[1].eq(255).all()]
    expected, _ = reference.loss(reference(images), labels)
    torch.manual_seed(7)
    losses = train_one_epoch(trainee, optimizer, schedule, scaler, data, spec, 1, torch.device("cpu"), None,
                             events, None)
    events.close()
    assert losses["loss"] == pytest.approx(expected.item(), rel=1e-5)
