"""`imacsr status`: exact output on a database filled through the Store API (in-process CliRunner)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imacsr_cli.cli import status as status_cli
from imacsr_cli.cli.app import app
from imacsr_cli.store import Store

T0 = 1_700_000_000.0
OWNER = "host:1:abc"


def spec(method: str = "imacsr", count: int = 2, position: str = "input", spacing: int = 1, seed: int = 0) -> dict:
    return {"model": {"name": "deeplabv3plus", "variant": "smp"}, "data": {"name": "synthetic"},
            "method": {"name": method}, "points": {"count": count, "position": position, "spacing": spacing,
                                                  "names": []},
            "train": {"epochs": 2, "seed": seed}}


RESULT = {"epochs": 2, "metrics": {"dataset": {"mIoU": 0.4321, "mF1": 0.5, "mPrecision": 0.6, "mRecall": 0.55,
                                               "per_class": {"iou": {"road": 0.9, "sky": None}}}},
          "code": {"imacsr": "0.1.0", "commit": "0123456789abcdef" * 2 + "01234567", "dirty": True}}


def fill(url: str, runs_root: str = "/runs") -> None:
    """Two grids, every state, a fixed clock (one second per write) so ages are exact."""
    now = [T0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    store = Store.open(url)
    store._clock = clock  # test-only: a deterministic clock (Store.open takes none)
    with store:
        store.upsert_grid("g1", title="Grid one")
        store.enqueue("g1", [
            {"run_id": "a0000000000a", "spec": spec("conventional"), "labels": [{"table": "iv"}]},
            {"run_id": "b0000000000b", "spec": spec(), "labels": [{"figure": "3"}, {"table": "vi", "series": "II"}]},
            {"run_id": "c0000000000c", "spec": spec(count=3, spacing=2), "labels": [{"figure": "3"}]},
            {"run_id": "d0000000000d", "spec": spec(position="central", seed=1), "labels": [{"table": "vi"}]},
        ])
        store.upsert_grid("g2", title="Grid two")
        store.enqueue("g2", [
            {"run_id": "a0000000000a", "spec": spec("conventional"), "labels": []},
            {"run_id": "e0000000000e", "spec": spec(seed=5), "labels": []},
        ])
        for run_id in ("a0000000000a", "b0000000000b", "c0000000000c"):
            assert store.claim(OWNER, pid=1, run_ids=[run_id]).run_id == run_id
            store.mark_started(run_id, OWNER, trainer_pid=42, slot="cpu#0", run_dir=f"{runs_root}/{run_id}")
            store.record_epoch(run_id, OWNER, 1, {"loss": 2.5}, {"mIoU": 0.25}, epochs=2)
        store.record_epoch("a0000000000a", OWNER, 2, {"loss": 2.0}, {"mIoU": 0.4}, epochs=2)
        store.finish("a0000000000a", OWNER, "succeeded", exit_code=0, final=RESULT)
        done = Path(runs_root) / "a0000000000a"
        if Path(runs_root).parent.is_dir():  # the succeeded run's result file, as a trainer leaves it
            done.mkdir(parents=True, exist_ok=True)
            (done / "result.json").write_text(json.dumps(RESULT))
        store.finish("c0000000000c", OWNER, "failed", reason="crashed", exit_code=1,
                     message="exit code 1: RuntimeError: boom\nTraceback (most recent call last):")
        store.cancel("e0000000000e")
        store.heartbeat("b0000000000b", OWNER)


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/imacsr.db"
    fill(url, runs_root=str(tmp_path / "runs"))
    monkeypatch.setattr(status_cli, "_now", lambda: T0 + 30.0)
    return url


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_status_lists_grids_with_counts_and_progress(db):
    r = invoke("status", "--db", db)
    assert r.exit_code == 0, r.output
    assert r.output == (
        "GRID  RUNS  QUEUED  RUNNING  SUCCEEDED  FAILED  CANCELLED  EPOCHS  PROGRESS\n"
        "g1       4       1        1          1       1          0     4/8       50%\n"
        "g2       2       0        0          1       0          1     2/4       50%\n"
    )


def test_status_runs_of_a_grid(db):
    """Running, failed and queued runs come before succeeded ones (grid order within a state)."""
    r = invoke("status", "g1", "--runs", "--db", db)
    assert r.exit_code == 0, r.output
    assert r.output == (
        "GRID  RUNS  QUEUED  RUNNING  SUCCEEDED  FAILED  CANCELLED  EPOCHS  PROGRESS\n"
        "g1       4       1        1          1       1          0     4/8       50%\n"
        "\n"
        "RUN           SPEC                                             STATE      EPOCH  mIoU (%)  AGE  REASON   CELL\n"
        "b0000000000b  deeplabv3plus/smp imacsr M=2 input s=1 seed=0    running      1/2     25.00  12s  -        figure=3; series=II,table=vi\n"
        "c0000000000c  deeplabv3plus/smp imacsr M=3 input s=2 seed=0    failed       1/2     25.00  14s  crashed  figure=3\n"
        "d0000000000d  deeplabv3plus/smp imacsr M=2 central s=1 seed=1  queued       0/2         -  28s  -        table=vi\n"
        "a0000000000a  deeplabv3plus/smp conventional seed=0            succeeded    2/2     43.21  15s  -        table=iv\n"
    )


def test_status_runs_of_every_grid(db):
    r = invoke("status", "--runs", "--db", db)
    assert r.exit_code == 0, r.output
    assert r.output == (
        "GRID  RUNS  QUEUED  RUNNING  SUCCEEDED  FAILED  CANCELLED  EPOCHS  PROGRESS\n"
        "g1       4       1        1          1       1          0     4/8       50%\n"
        "g2       2       0        0          1       0          1     2/4       50%\n"
        "\n"
        "RUN           SPEC                                             STATE      EPOCH  mIoU (%)  AGE  REASON     GRIDS\n"
        "b0000000000b  deeplabv3plus/smp imacsr M=2 input s=1 seed=0    running      1/2     25.00  12s  -          g1\n"
        "c0000000000c  deeplabv3plus/smp imacsr M=3 input s=2 seed=0    failed       1/2     25.00  14s  crashed    g1\n"
        "d0000000000d  deeplabv3plus/smp imacsr M=2 central s=1 seed=1  queued       0/2         -  28s  -          g1\n"
        "e0000000000e  deeplabv3plus/smp imacsr M=2 input s=1 seed=5    cancelled    0/2         -  13s  cancelled  g2\n"
        "a0000000000a  deeplabv3plus/smp conventional seed=0            succeeded    2/2     43.21  15s  -          g1,g2\n"
    )


def test_status_runs_of_a_grid_with_a_cancelled_run(db):
    r = invoke("status", "g2", "--runs", "--db", db)
    assert r.exit_code == 0, r.output
    assert r.output == (
        "GRID  RUNS  QUEUED  RUNNING  SUCCEEDED  FAILED  CANCELLED  EPOCHS  PROGRESS\n"
        "g2       2       0        0          1       0          1     2/4       50%\n"
        "\n"
        "RUN           SPEC                                           STATE      EPOCH  mIoU (%)  AGE  REASON     CELL\n"
        "e0000000000e  deeplabv3plus/smp imacsr M=2 input s=1 seed=5  cancelled    0/2         -  13s  cancelled  -\n"
        "a0000000000a  deeplabv3plus/smp conventional seed=0          succeeded    2/2     43.21  15s  -          -\n"
    )


def test_status_json(db):
    r = invoke("status", "g1", "--runs", "--json", "--db", db)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [g["grid"] for g in data["grids"]] == ["g1"]
    assert data["grids"][0]["succeeded"] == 1 and data["grids"][0]["total"] == 4
    runs = {r["run_id"]: r for r in data["runs"]}
    assert list(runs) == ["b0000000000b", "c0000000000c", "d0000000000d", "a0000000000a"]  # STATE_ORDER
    assert runs["a0000000000a"]["state"] == "succeeded" and runs["a0000000000a"]["final/mIoU_pct"] == 43.21
    assert runs["b0000000000b"]["val/mIoU_pct"] == 25.0 and runs["b0000000000b"]["final/mIoU_pct"] is None
    assert "final/mIoU" not in runs["a0000000000a"]  # one unit: percent, labelled in the key
    assert runs["c0000000000c"]["reason"] == "crashed" and runs["c0000000000c"]["exit_code"] == 1
    assert runs["b0000000000b"]["cells"] == [{"figure": "3"}, {"series": "II", "table": "vi"}]


def test_status_errors(tmp_path, db):
    missing = tmp_path / "nowhere.db"
    r = invoke("status", "--db", str(missing))
    assert r.exit_code == 2
    assert r.output == f"error: no results database at {missing}; `imacsr run-grid` creates it\n"
    assert not missing.exists()
    r = invoke("status", "nope", "--db", db)
    assert r.exit_code == 2 and r.output == "error: no grid 'nope'; `imacsr status` lists them\n"


def test_status_of_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path}/empty.db"
    Store.open(url).close()
    r = invoke("status", "--db", url)
    assert (r.exit_code, r.output) == (0, "no grids yet: `imacsr run-grid GRID` adds one\n")


def test_status_watch_exits_0_on_ctrl_c(db):
    """Ctrl-C once the first frame is on the terminal (a pty: rich draws live only there) ends the
    watch quietly, whatever the machine's speed: the test waits for the frame, not for a duration."""
    import os
    import pty
    import select

    repo = Path(__file__).resolve().parents[2]
    leader, follower = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "imacsr_cli", "status", "--watch", "--interval", "0.2", "--db", db],
                         cwd=repo, stdin=follower, stdout=follower, stderr=subprocess.PIPE, text=True)
    try:
        os.close(follower)
        seen = b""
        deadline = time.monotonic() + 600  # a bound on a hang, not a speed requirement
        while b"Ctrl-C to quit" not in seen:
            assert time.monotonic() < deadline and p.poll() is None, seen.decode(errors="replace")
            try:
                seen += os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
        p.send_signal(signal.SIGINT)
        # Keep reading the terminal until the watch exits: it may be blocked writing a frame to a full pty
        # (on a loaded machine several frames pile up), and it must be able to draw its last one.
        while p.poll() is None:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
        _, err = p.communicate(timeout=600)
        os.close(leader)
        out = seen.decode(errors="replace")
        assert p.returncode == 0, err
        assert "g1       4       1" in out
    finally:
        if p.poll() is None:  # never leave a watch behind
            p.kill()


def test_status_runs_fits_a_narrow_terminal(db):
    """On a terminal the runs table fits its width: SPEC drops what every run shares (here the model),
    then SPEC and CELL are shortened with an ellipsis; piped output keeps whole lines (tests above)."""
    with Store.open(db, create=False) as store:
        text = status_cli.render(store, "g1", True, width=80)
        wide = status_cli.render(store, "g1", True, width=200)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert lines[3].split()[:2] == ["RUN", "SPEC"]
    # 80 columns leave 26 for SPEC and CELL together (mIoU (%) takes 4 more): the widest is shortened first.
    assert lines[4] == "b0000000000b  imacsr M=2…  running      1/2     25.00  12s  -        figure=3; …"
    assert lines[-1].startswith("a0000000000a  convention…  succeeded") and "deeplabv3plus" not in text
    # Wide enough: the same table as in a pipe.
    assert wide == status_cli.render(store, "g1", True)
