"""Store: enqueue, plan, claim, owner checks, ingest, reclaim, cancel/retry, queries (real SQLite files)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from storehelp import rows, spec_dict

from imacsr_cli.errors import NotFound, StoreError
from imacsr_cli.store import NotOwner, Store


def test_enqueue_is_idempotent(store):
    store.upsert_grid("g", title="T", reproduces="Fig. 3")
    assert store.enqueue("g", rows(5)) == {"new": 5, "queued": 0, "running": 0, "succeeded": 0, "failed": 0,
                                           "cancelled": 0, "total": 5}
    run = store.claim("o1", grid="g")
    store.finish(run.run_id, "o1", "succeeded")
    again = store.enqueue("g", rows(6))
    assert again == {"new": 1, "queued": 4, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 0, "total": 6}
    assert store.get(run.run_id).state == "succeeded"  # never trained twice
    assert store.plan("g")["total"] == 6
    df = store.runs_frame("g")
    assert list(df["run_id"]) == [f"run{i:05d}" for i in range(6)]
    assert df["cells"].tolist() == [[{"figure": "3"}]] * 6
    # labels are upserted on re-enqueue; prune drops links that left the grid (the runs stay)
    store.enqueue("g", rows(2, labels=[{"figure": "3"}, {"table": "vi"}]), prune=True)
    assert store.runs_frame("g")["cells"].tolist() == [[{"figure": "3"}, {"table": "vi"}]] * 2
    assert store.plan()["total"] == 6
    enq = store.run_events("run00001")
    assert (enq["kind"] == "enqueued").sum() == 1


def test_enqueue_refuses_rows_with_errors(store):
    bad = rows(3)
    bad[1] = {"run_id": None, "spec": spec_dict(1), "labels": {}, "error": "model 'topformer' is not installed"}
    with pytest.raises(StoreError) as err:
        store.enqueue("g", bad)
    assert str(err.value) == "grid 'g': run 2 cannot be enqueued: model 'topformer' is not installed"
    assert store.plan()["total"] == 0 and store.grid_summary().empty


def test_enqueue_real_grid_rows_shares_runs_across_grids(store):
    from imacsr_cli.spec.grid import GridSpec

    a = GridSpec.find("ablations/num_points")
    b = GridSpec.find("ablations/position")
    for g in (a, b):
        store.upsert_grid(g)
    ca = store.enqueue(a.name, a.expand())
    cb = store.enqueue(b.name, b.expand())
    assert ca["new"] == 18
    # already there: the baseline and series I-III at the input (= M 1..3 of num_points), 3 seeds each
    assert cb["new"] == 30 - 12 and cb["queued"] == 12
    assert store.plan()["total"] == 18 + 18
    summary = store.grid_summary().set_index("grid")
    assert summary.loc["position", "total"] == 30 and summary.loc["num_points", "reproduces"] == "Fig. 3"
    assert store.grid("position")["toml"] == b.toml_text
    run = store.get(a.expand()[0].run_id)
    assert json.loads(run.spec_json) == a.expand()[0].spec.to_dict()
    assert (run.model, run.dataset, run.num_points, run.position, run.spacing) == (
        "deeplabv3plus", "cityscapes", 1, "input", 1)
    base = next(r for r in a.expand() if r.spec.method.name == "conventional")
    assert store.get(base.run_id).position is None
    grids = store.run(base.run_id)["grids"]
    assert [(g["grid"], g["cell"]) for g in grids] == [
        ("num_points", [{"figure": "3", "role": "baseline"}]), ("position", [{"table": "vi", "role": "baseline"}])]
    cells = store.cells_frame()
    assert set(cells.columns) >= {"grid", "run_id", "figure", "table", "series", "role", "num_points", "position"}
    assert len(cells[cells.grid == "position"]) == 30


def test_plan_counts_new_ids(store):
    store.enqueue("g", rows(3))
    ids = [r["run_id"] for r in rows(5)]
    assert store.plan(run_ids=ids) == {"new": 2, "queued": 3, "running": 0, "succeeded": 0, "failed": 0,
                                       "cancelled": 0, "total": 5}


def test_claim_order_and_attempts(store):
    store.enqueue("a", rows(3, prefix="a"))
    store.enqueue("b", rows(2, prefix="b"))
    got = [store.claim("o", grid="b").run_id for _ in range(2)]
    assert got == ["b00000", "b00001"]
    assert store.claim("o", grid="b") is None
    assert store.claim("o", grid="b", fallback=True).run_id == "a00000"
    assert store.claim("o", run_ids=["a00002", "a00001"]).run_id == "a00002"
    rec = store.claim("o")
    assert (rec.run_id, rec.state, rec.owner, rec.attempts) == ("a00001", "running", "o", 1)
    assert store.claim("o") is None


def test_owner_check_refuses_other_writers(store):
    store.enqueue("g", rows(1))
    run = store.claim("sched-1", grid="g")
    msg = f"run {run.run_id} is running and owned by sched-1, not by sched-2: write refused"
    for call in (
        lambda: store.mark_started(run.run_id, "sched-2", trainer_pid=1, slot="cpu:0", run_dir="/r"),
        lambda: store.heartbeat(run.run_id, "sched-2"),
        lambda: store.record_epoch(run.run_id, "sched-2", 1, {"loss": 1.0}, {}),
        lambda: store.finish(run.run_id, "sched-2", "succeeded"),
        lambda: store.requeue(run.run_id, "sched-2", "interrupted"),
    ):
        with pytest.raises(NotOwner) as err:
            call()
        assert str(err.value) == msg
    assert store.metrics_frame().empty
    # after a finish, even the owner cannot write
    store.finish(run.run_id, "sched-1", "failed", reason="crashed", message="boom", exit_code=1)
    with pytest.raises(NotOwner, match="is failed and owned by sched-1"):
        store.heartbeat(run.run_id, "sched-1")
    with pytest.raises(NotFound, match="no run 'zzzzzz'; `imacsr status --runs` lists them"):
        store.heartbeat("zzzzzz", "sched-1")


def test_full_lifecycle_and_ingest_idempotent(store):
    store.enqueue("g", rows(1))
    run = store.claim("o", grid="g")
    store.mark_started(run.run_id, "o", trainer_pid=4242, slot="cpu:0", run_dir="/tmp/r")
    for _ in range(2):  # re-ingest the same events
        store.record_epoch(run.run_id, "o", 1, {"loss": 2.0, "ce": 1.5}, {"mIoU": 0.2, "mF1": 0.3}, epochs=3)
        store.record_epoch(run.run_id, "o", 2, {"loss": 1.0, "ce": 0.9}, {"mIoU": 0.4, "mF1": 0.5}, epochs=3)
    store.heartbeat(run.run_id, "o", epoch=2)
    result = {"epochs": 3, "metrics": {
        "dataset": {"mIoU": 0.5, "mF1": 0.6, "mPrecision": 0.7, "mRecall": 0.55,
                    "per_class": {"iou": {"road": 0.9, "sky": None}}},
        "paper": {"mIoU": 0.45, "mF1": 0.5, "mPrecision": 0.6, "mRecall": 0.5}},
        "wall_seconds": 12.5, "images_per_s": 30.0}
    store.finish(run.run_id, "o", "succeeded", exit_code=0, final=result)
    m = store.metrics_frame([run.run_id])
    assert len(m[m.split == "train"]) == 4 and len(m[m.split == "val"]) == 4
    final = store.metrics_frame(split="final").set_index("name")["value"].to_dict()
    assert final == {"mIoU": 0.5, "mF1": 0.6, "mPrecision": 0.7, "mRecall": 0.55, "iou/road": 0.9,
                     "paper/mIoU": 0.45, "paper/mF1": 0.5, "paper/mPrecision": 0.6, "paper/mRecall": 0.5,
                     "wall_seconds": 12.5, "images_per_s": 30.0}
    assert set(store.metrics_frame(split="final")["epoch"]) == {3}
    kinds = store.run_events(run.run_id)["kind"].tolist()
    assert kinds == ["enqueued", "claimed", "started", "epoch", "epoch", "succeeded"]
    df = store.runs_frame("g").iloc[0]
    assert (df.state, df.epoch, df.epochs, df["val/mIoU"], df["final/mIoU"], df.trainer_pid) == (
        "succeeded", 3, 3, 0.4, 0.5, 4242)
    info = store.run(run.run_id[:5])
    assert info["final"]["mIoU"] == 0.5 and info["last_val"] == {"mIoU": 0.4, "mF1": 0.5}
    assert [e["kind"] for e in info["events"]][-1] == "succeeded"


def test_requeue_keeps_attempts(store):
    store.enqueue("g", rows(1))
    run = store.claim("o", grid="g")
    store.requeue(run.run_id, "o", "interrupted", "SIGTERM")
    rec = store.get(run.run_id)
    assert (rec.state, rec.reason, rec.owner, rec.attempts) == ("queued", "interrupted", None, 1)
    assert store.claim("o2", grid="g").attempts == 2


def test_retries_are_a_column_counted_by_requeue_and_reset_by_retry(store):
    store.enqueue("g", rows(1))
    (run_id,) = store.grid_run_ids("g")
    store.claim("o", grid="g")
    store.requeue(run_id, "o", "oom", "retry 1/2 after oom", retry=True)
    store.claim("o", grid="g")
    store.requeue(run_id, "o", "interrupted", "stopped by the scheduler")  # not a retry: not counted
    store.claim("o", grid="g")
    store.requeue(run_id, "o", "oom", "any text at all", retry=True)  # counted whatever the message says
    assert store.get(run_id).retries == 2 and store.run(run_id)["retries"] == 2
    store.claim("o", grid="g")
    store.finish(run_id, "o", "failed", reason="oom", message="out of memory")
    assert store.get(run_id).retries == 2
    assert store.retry(run_id) and store.get(run_id).retries == 0  # a fresh budget


def _four_owners(store, n_runs):
    """Enqueue ``n_runs`` and claim four of them by the owners (dead, alive, remote, stale); returns
    those four runs and ``now`` (the stale run's heartbeat is ``now - 1000``)."""
    store.enqueue("g", rows(n_runs))
    dead = store.claim("dead-sched", pid=999_999_1, grid="g")  # this host, pid gone
    alive = store.claim("live-sched", grid="g")  # this host, this (alive) pid
    remote = store.claim("remote", host="elsewhere", pid=12, grid="g")  # another host: pid not checkable
    stale = store.claim("stale", host="elsewhere", pid=13, grid="g")
    now = store._clock()
    with store._write() as conn:  # make one remote heartbeat old
        conn.execute(text("UPDATE runs SET heartbeat_at = :t WHERE run_id = :r"), {"t": now - 1000, "r": stale.run_id})
    return (dead, alive, remote, stale), now


def test_reclaim_orphans(store):
    (dead, alive, remote, stale), _ = _four_owners(store, 4)
    got = store.reclaim_orphans(600, lambda pid: pid != 999_999_1)
    assert sorted(got) == sorted([dead.run_id, stale.run_id])
    for r in (dead, stale):
        rec = store.get(r.run_id)
        assert (rec.state, rec.reason, rec.owner, rec.attempts) == ("queued", "orphaned", None, 1)
    assert store.get(alive.run_id).state == "running" and store.get(remote.run_id).state == "running"
    ev = store.run_events(dead.run_id).iloc[-1]
    assert (ev.kind, ev.reason) == ("reclaimed", "orphaned") and "pid 9999991" in ev.detail
    assert "last heartbeat 1000 s ago (lease 600 s)" in store.run_events(stale.run_id).iloc[-1].detail
    # the old owner's writes are refused from now on
    with pytest.raises(NotOwner):
        store.record_epoch(dead.run_id, "dead-sched", 1, {"loss": 1.0}, {})
    # the default probe (os.kill) sees this process alive
    assert store.reclaim_orphans(600) == []


def test_orphans_lists_what_reclaim_orphans_takes_back(store):
    (dead, alive, remote, stale), now = _four_owners(store, 5)
    probe = lambda pid: pid != 999_999_1  # noqa: E731
    # the pid probe applies to the runs of `host` only; the lease to every host
    assert store.orphans(600, probe, host="elsewhere") == [stale.run_id]
    assert sorted(store.orphans(600, probe, now=now + 10_000)) == sorted(
        [dead.run_id, alive.run_id, remote.run_id, stale.run_id])
    listed = store.orphans(600, probe)
    assert sorted(listed) == sorted([dead.run_id, stale.run_id])
    # read-only: nothing changed
    assert [store.get(r.run_id).state for r in (dead, alive, remote, stale)] == ["running"] * 4
    assert store.plan("g")["queued"] == 1
    # the same arguments: reclaim_orphans takes back exactly what orphans listed, and then none is left
    assert sorted(store.reclaim_orphans(600, probe)) == sorted(listed)
    assert store.orphans(600, probe) == [] and store.reclaim_orphans(600, probe) == []


def test_cancel_and_retry(store):
    store.enqueue("g", rows(4))
    running = store.claim("o", grid="g")
    assert store.cancel(running.run_id) is True
    with pytest.raises(NotOwner):
        store.heartbeat(running.run_id, "o")  # the scheduler learns it must stop the trainer
    assert store.cancel(running.run_id) is False
    assert store.retry(running.run_id) is True
    rec = store.get(running.run_id)
    assert (rec.state, rec.attempts, rec.reason) == ("queued", 0, None)
    assert store.retry(running.run_id) is False  # already queued
    r2 = store.claim("o", grid="g")
    store.finish(r2.run_id, "o", "failed", reason="oom", exit_code=4)
    r3 = store.claim("o", grid="g")
    store.finish(r3.run_id, "o", "succeeded")
    with pytest.raises(StoreError, match="succeeded; only failed or cancelled runs can be retried"):
        store.retry(r3.run_id)
    assert store.retry_failed("g") == [r2.run_id]
    assert store.cancel_grid("g") == sorted(set(store.grid_run_ids("g")) - {r3.run_id},
                                            key=store.grid_run_ids("g").index)
    assert store.plan("g")["cancelled"] == 3
    assert store.retry_failed(include_cancelled=True) and store.plan("g")["queued"] == 3


def test_not_found_messages(store):
    with pytest.raises(NotFound) as err:
        store.run("abcdef")
    assert str(err.value) == "no run 'abcdef'; `imacsr status --runs` lists them"
    store.enqueue("g", [{"run_id": "abcd0001", "spec": spec_dict(0)}, {"run_id": "abcd0002", "spec": spec_dict(1)}])
    with pytest.raises(NotFound, match="run id prefix 'abcd' is ambiguous"):
        store.get("abcd")
    assert store.resolve_id("abcd0002") == "abcd0002"
    with pytest.raises(NotFound, match="no grid 'x'"):
        store.grid("x")


def test_queries_shape(store):
    store.upsert_grid("g", title="Title")
    store.enqueue("g", rows(3))
    store.claim("o", grid="g")
    s = store.grid_summary()
    assert s.to_dict("records")[0] | {"updated_at": 0} == {
        "grid": "g", "title": "Title", "reproduces": "", "queued": 2, "running": 1, "succeeded": 0, "failed": 0,
        "cancelled": 0, "total": 3, "epochs_done": 0, "epochs_total": 9, "updated_at": 0}
    df = store.runs_frame()
    assert len(df) == 3 and df["grids"].tolist() == ["g"] * 3
    assert df["heartbeat_age"].notna().sum() == 1
    assert len(store.runs_frame(states=["queued"])) == 2
    assert store.metrics_frame(["nope"]).empty


def test_open_env_and_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMACSR_DB", raising=False)
    with Store.open() as s:
        assert s.where == "results/imacsr.db"
    assert (tmp_path / "results" / "imacsr.db").exists()
    monkeypatch.setenv("IMACSR_DB", f"sqlite:///{tmp_path / 'env.db'}")
    with Store.open() as s:
        assert s.where == str(tmp_path / "env.db")
    with pytest.raises(NotFound, match="no results database at"):
        Store.open(str(tmp_path / "missing.db"), create=False)


def test_reenqueue_refreshes_execution_fields_of_unstarted_runs(store):
    store.enqueue("g", rows(2))
    done = store.claim("o", grid="g")
    store.finish(done.run_id, "o", "succeeded")
    changed = rows(2)
    for r in changed:
        r["spec"]["data"]["root"] = "/new/root"  # not part of the identity: same run_id
    store.enqueue("g", changed)
    assert "root" not in store.get(done.run_id).spec["data"]  # a finished run keeps what it ran with
    assert store.get("run00001").spec["data"]["root"] == "/new/root"


def test_final_metrics_per_class_list_form():
    from imacsr_cli.store import final_metrics

    means = {"mIoU": 0.5, "mF1": None, "mPrecision": None, "mRecall": None}
    result = {"classes": ["sky", "road", "car"], "epochs": 3,
              "metrics": {"dataset": {**means, "per_class": {"iou": [0.9, None, 0.1]}}, "paper": {**means, "mIoU": 0.4}}}
    assert final_metrics(result) == {"mIoU": 0.5, "iou/sky": 0.9, "iou/car": 0.1, "paper/mIoU": 0.4}


def test_a_result_that_is_not_a_trainers_is_refused_with_the_key():
    from imacsr_cli.rundir import ResultError
    from imacsr_cli.store import final_metrics

    good = {"mIoU": 0.5, "mF1": 0.6, "mPrecision": 0.7, "mRecall": 0.55}
    for bad, key in (({"metrics": {}}, "metrics.dataset"),
                     ({"metrics": {"dataset": {**good, "mIoU": 1.5}}}, "metrics.dataset.mIoU"),
                     ({"metrics": {"dataset": {**good, "mF1": float("nan")}}}, "metrics.dataset.mF1"),
                     ({"metrics": {"dataset": {k: v for k, v in good.items() if k != "mRecall"}}},
                      "metrics.dataset.mRecall"),
                     ({"metrics": {"dataset": good}, "epochs": "3"}, "epochs"),
                     ({"metrics": {"dataset": good}, "code": {"commit": 7}}, "code")):
        with pytest.raises(ResultError, match=f"key '{key}"):
            final_metrics(bad)
