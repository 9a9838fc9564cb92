"""The failure taxonomy: exit code + events + log tail → verdict and reason."""

from __future__ import annotations

import signal

from imacsr_cli.launch.classify import classify, tail_lines
from imacsr_cli.rundir import End


def test_result_file_is_the_truth_about_success():
    # Even a trainer killed after writing result.json has finished.
    out = classify(-signal.SIGKILL, result_exists=True)
    assert (out.verdict, out.reason) == ("succeeded", None)


def test_exit_codes_map_to_reasons():
    table = {1: "crashed", 2: "bad_spec", 3: "nonfinite", 4: "oom", 6: "interrupted", 77: "crashed"}
    for code, reason in table.items():
        out = classify(code, result_exists=False)
        assert (out.verdict, out.reason) == ("failed", reason), code
    assert classify(4, result_exists=False).retryable
    assert classify(6, result_exists=False).retryable
    assert not classify(3, result_exists=False).retryable
    assert not classify(1, result_exists=False).retryable


def test_locked_goes_back_to_the_queue_not_a_failure():
    out = classify(5, result_exists=False, end_event=End(reason="locked", message="held by pid 7"))
    assert (out.verdict, out.reason, out.message) == ("requeue", "locked", "held by pid 7")


def test_crash_message_carries_the_last_log_lines():
    out = classify(1, result_exists=False, log_tail=["Traceback (most recent call last):", "RuntimeError: boom"])
    assert out.message == "exit code 1\nTraceback (most recent call last):\nRuntimeError: boom"
    zero = classify(0, result_exists=False)
    assert zero.reason == "crashed" and "without writing result.json" in zero.message


def test_sigkill_from_outside_is_killed_retryable_and_blames_host_memory():
    killed = classify(-9, result_exists=False)
    assert (killed.verdict, killed.reason, killed.retryable) == ("failed", "killed", True)
    assert killed.message.startswith("killed by SIGKILL, not by imacsr: host memory is the likely cause")
    # Our own SIGKILL (after a timeout or a forced stop) stays what it was.
    assert classify(-9, result_exists=False, stopped=True).reason == "interrupted"


def test_a_full_disk_requeues_and_a_foreign_result_fails():
    full = classify(7, result_exists=False, end_event=End(reason="disk_full", message="disk full: no space"))
    assert (full.verdict, full.reason) == ("requeue", "disk_full")
    assert full.message == "disk full: no space; it resumes from its last checkpoint once space is back"
    assert classify(7, result_exists=False).message.startswith("disk full")
    bad = classify(8, result_exists=False, end_event=End(reason="bad_result", message="x/result.json is empty"))
    assert (bad.verdict, bad.reason, bad.message, bad.retryable) == ("failed", "bad_result", "x/result.json is empty",
                                                                    False)


def test_scheduler_decisions_win_over_the_exit_code():
    assert classify(6, result_exists=False, stopped=True).verdict == "requeue"
    t = classify(-9, result_exists=False, timed_out="no progress for 10 s")
    assert (t.verdict, t.reason, t.message) == ("failed", "timeout", "no progress for 10 s")
    assert classify(6, result_exists=False, cancelled=True).verdict == "cancelled"


def test_tail_lines(tmp_path):
    log = tmp_path / "x.log"
    assert tail_lines(log) == []
    log.write_text("a\n\n--- launch\nb\nc\n--- launch\nd\n\ne\n")
    assert tail_lines(log, 2) == ["d", "e"]
    assert tail_lines(log, after="--- ") == ["d", "e"]
    assert tail_lines(log, 10) == ["a", "--- launch", "b", "c", "--- launch", "d", "e"]


def test_tail_lines_since_an_offset(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("old 1\nold 2\n")
    offset = log.stat().st_size
    with open(log, "a") as fh:
        fh.write("new 1\nnew 2\n")
    assert tail_lines(log, since=offset) == ["new 1", "new 2"]
    assert tail_lines(log, since=log.stat().st_size) == []


def test_tail_lines_keep_the_whole_last_traceback(tmp_path):
    # A deep stack: 20 frames between the header and the error, more than the 12-line default.
    frames = [f'  File "m.py", line {i}, in f{i}' for i in range(20)]
    log = tmp_path / "train.log"
    log.write_text("\n".join(["noise"] * 5 + ["Traceback (most recent call last):", *frames, "RuntimeError: boom"]) + "\n")
    tail = tail_lines(log)
    assert tail[0] == "Traceback (most recent call last):" and tail[-1] == "RuntimeError: boom" and len(tail) == 22
    # Farther back than 40 lines, the header is not chased: the last 12 lines as before.
    log.write_text("\n".join(["Traceback (most recent call last):"] + [f"line {i}" for i in range(50)]) + "\n")
    assert tail_lines(log) == [f"line {i}" for i in range(38, 50)]
