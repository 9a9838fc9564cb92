"""The run-directory contract: typed events (writer, incremental reader), the atomic writer, the
spec.json writer, the validated result.json reader, the code version, and the shared vocabulary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imacsr_cli import metric_names as mn
from imacsr_cli.rundir import (
    CodeVersion,
    End,
    Epoch,
    EventWriter,
    Heartbeat,
    ResultError,
    RunPaths,
    Start,
    Step,
    code_version,
    codes,
    read_events,
    read_result,
    write_atomic,
    write_spec,
)

MEANS = {"mIoU": 0.25, "mF1": 0.5, "mPrecision": 0.75, "mRecall": 1.0}


def test_events_round_trip_typed_and_the_listener_sees_steps(tmp_path):
    seen = []
    w = EventWriter(tmp_path / "events.jsonl", listener=seen.append)
    w.emit(Start(run_id="r1", pid=7, epochs=2, steps_per_epoch=3, points=["stem"]))
    w.progress(phase="train", epoch=1, step=1, steps=3, loss=0.5)  # the first heartbeat is due at once
    w.progress(phase="train", epoch=1, step=2, steps=3, loss=0.4)  # within HEARTBEAT_SECONDS: listener only
    w.emit(Epoch(epoch=1, epochs=2, train={mn.LOSS: 0.45}, val={mn.MIOU: float("nan")}))
    w.emit(End(status="failed", reason=codes.CRASHED, message="boom", exit_code=codes.EXIT_CRASH))
    w.close()
    events, offset = read_events(tmp_path / "events.jsonl")
    assert [type(e) for e in events] == [Start, Heartbeat, Epoch, End]
    assert (events[0].run_id, events[0].points, events[1].step, events[1].loss) == ("r1", ["stem"], 1, 0.5)
    assert events[2].val == {mn.MIOU: None}  # NaN is not JSON: written as null
    assert (events[3].reason, events[3].exit_code) == ("crashed", 1)
    assert offset == (tmp_path / "events.jsonl").stat().st_size
    assert [type(e) for e in seen] == [Start, Step, Heartbeat, Step, Epoch, End]


def test_reader_continues_from_an_offset_and_waits_for_an_unfinished_line(tmp_path):
    path = tmp_path / "events.jsonl"
    first = json.dumps({"event": "heartbeat", "time": 1.0, "epoch": 1, "step": 2, "steps": 4}) + "\n"
    torn = '{"event": "epoch", "time": 2.0, "epo'
    path.write_text(first + torn)
    events, offset = read_events(path)
    assert [(e.kind, e.step) for e in events] == [("heartbeat", 2)] and offset == len(first)
    with open(path, "a") as fh:  # the writer finishes its line
        fh.write('ch": 1, "epochs": 2, "train": {"loss": 1.0}}\n')
    more, offset2 = read_events(path, offset)
    assert [(e.kind, e.epoch, e.train) for e in more] == [("epoch", 1, {"loss": 1.0})]
    assert offset2 == path.stat().st_size
    assert read_events(tmp_path / "missing.jsonl", 5) == ([], 5)


def test_reader_skips_garbage_unknown_kinds_and_wrong_types_and_maps_legacy_reasons(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [
        "not json at all",
        json.dumps({"event": "diagnostics", "time": 1.0, "points": {}}),  # a kind from a newer trainer
        json.dumps({"event": "epoch", "time": 1.0, "epoch": "two"}),  # wrong type: not an epoch record
        json.dumps({"event": "start", "time": 1.0, "run_id": "r", "future_field": 3}),  # extra field ignored
        json.dumps({"event": "end", "time": 2.0, "status": "failed", "reason": "crash", "exit_code": 1}),
        "[1, 2]",
    ]
    path.write_text("\n".join(lines) + "\n")
    events, _ = read_events(path)
    assert [(e.kind, getattr(e, "reason", None)) for e in events] == [("start", None), ("end", "crashed")]


def test_one_vocabulary_of_reasons_and_exit_codes():
    from imacsr_cli.launch.classify import classify
    from imacsr_cli.store import REASONS

    assert REASONS is codes.REASONS
    for code, reason in codes.REASON_OF_EXIT.items():
        if code != codes.EXIT_LOCKED:
            assert classify(code, result_exists=False).reason == reason
    assert codes.RETRYABLE <= set(codes.REASONS)


def test_write_atomic_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")

    def half(fh):
        fh.write(b"new and half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["result.json"]


def test_write_spec_is_the_one_writer_and_leaves_an_equal_spec_alone(tmp_path):
    paths = RunPaths.of(tmp_path / "runs", "r1")
    spec = {"model": {"name": "deeplabv3plus"}, "train": {"epochs": 2}}
    assert write_spec(paths, spec) is True and json.loads(paths.spec.read_text()) == spec
    mtime = paths.spec.stat().st_mtime_ns
    assert write_spec(paths, json.loads(json.dumps(spec))) is False and paths.spec.stat().st_mtime_ns == mtime
    assert write_spec(paths, {**spec, "train": {"epochs": 3}}) is True
    assert json.loads(paths.spec.read_text())["train"] == {"epochs": 3}


def _result(**extra):
    return {"run_id": "r1", "classes": ["road", "sky"], "epochs": 2,
            "metrics": {"dataset": {**MEANS, "per_class": {"iou": [0.5, None]}}, "paper": dict(MEANS)},
            "wall_seconds": 3.0, "images_per_s": 10.0,
            "code": {"imacsr": "0.1.0", "commit": "a" * 40, "dirty": False}, **extra}


def test_read_result_types_every_field_and_flattens_the_final_metrics(tmp_path):
    paths = RunPaths(tmp_path)
    paths.result.write_text(json.dumps(_result()))
    r = read_result(paths, "r1")
    assert r.code == CodeVersion("0.1.0", "a" * 40, False)
    assert r.code.describe() == "imacsr 0.1.0, commit aaaaaaaaaaaa"
    assert r.final_metrics() == {**MEANS, **{f"paper/{k}": v for k, v in MEANS.items()}, "iou/road": 0.5,
                                 "wall_seconds": 3.0, "images_per_s": 10.0}
    # A result.json from before the code version was recorded reads with code None.
    old = _result(git_commit="b" * 40)
    del old["code"]
    paths.result.write_text(json.dumps(old))
    assert read_result(paths).code is None


@pytest.mark.parametrize("text, message", [
    ("", "not JSON"),
    ("[]", "expected a JSON object, got a list"),
    (json.dumps({"run_id": "r1"}), "key 'metrics.dataset': missing"),
    (json.dumps(_result(epochs=-1)), "key 'epochs': expected a whole number >= 0, got -1"),
    (json.dumps(_result(classes=["road"])), "key 'metrics.dataset.per_class.iou': 2 values for 1 classes"),
    (json.dumps(_result(wall_seconds="3")), "key 'wall_seconds': expected a number >= 0 or null, got '3'"),
    (json.dumps(_result(code={"dirty": "yes"})), "key 'code': key 'dirty': expected bool or null"),
    (json.dumps(_result(run_id="other")), "key 'run_id': expected 'r1', got 'other' (a foreign result)"),
    (json.dumps(_result()).replace("0.75", "Infinity"), "key 'metrics.dataset.mPrecision': expected a fraction"),
])
def test_read_result_refuses_what_a_trainer_does_not_write_with_file_and_key(tmp_path, text, message):
    paths = RunPaths(tmp_path)
    paths.result.write_text(text)
    with pytest.raises(ResultError) as err:
        read_result(paths, "r1")
    assert str(err.value).startswith(str(paths.result)) and message in str(err.value)
    assert "\n" not in str(err.value) and err.value.exit_code == 2


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_code_version_reads_commit_and_dirty_flag_of_the_packages_checkout(tmp_path):
    root = tmp_path / "checkout"
    (root / "imacsr_cli").mkdir(parents=True)
    (root / "imacsr_cli" / "x.py").write_text("A = 1\n")
    assert code_version(root).commit is None  # not a git checkout: no commit, no error
    _git(root, "init", "-q")
    assert code_version(root) == CodeVersion(code_version(root).imacsr, None, None)  # no commit yet
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "one")
    head = _git(root, "rev-parse", "HEAD")
    assert code_version(root).commit == head and code_version(root).dirty is False
    (root / "untracked.txt").write_text("not code\n")
    assert code_version(root).dirty is False  # untracked files are not a change to the code
    (root / "imacsr_cli" / "x.py").write_text("A = 2\n")
    assert code_version(root) == CodeVersion(code_version(root).imacsr, head, True)
    # A package that merely sits inside another repository (e.g. a venv in a project) is not its code.
    assert code_version(root / "imacsr_cli").commit is None


def test_rundir_imports_no_torch_and_nothing_of_store_launch_or_train():
    code = ("import sys, imacsr_cli.rundir; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.split('.')[:2] in "
            "(['imacsr_cli', 'store'], ['imacsr_cli', 'launch'], ['imacsr_cli', 'train'], ['imacsr_cli', 'cli'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
