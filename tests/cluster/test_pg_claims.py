"""Eight processes claiming from one PostgreSQL database: no run twice, no idle claimer while runs wait."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from storehelp import rows

from imacsr_cli.store import Store

N_CLAIMERS = 8
N_RUNS = 400

CLAIMER = textwrap.dedent("""
    import json, os, sys, time
    from imacsr_cli.store import Store
    url, owner, flags = sys.argv[1], sys.argv[2], sys.argv[3]
    store = Store.open(url)
    open(os.path.join(flags, owner), "w").close()  # ready
    while not os.path.exists(os.path.join(flags, "go")):
        time.sleep(0.001)
    got, empty_while_queued = [], []
    while True:
        run = store.claim(owner, grid="g")
        if run is None:
            # Committed queued runs right after an empty answer: only rows that other claimers had locked
            # at that moment (at most one each) may remain; anything more was a run this claimer missed.
            left = store.plan("g")["queued"]
            if left == 0:
                break
            empty_while_queued.append(left)
            continue
        store.heartbeat(run.run_id, owner)
        store.record_epoch(run.run_id, owner, 1, {"loss": 1.0}, {"mIoU": 0.5})
        store.finish(run.run_id, owner, "succeeded")
        got.append(run.run_id)
    print(json.dumps({"got": got, "empty": empty_while_queued}))
""")


def test_eight_claimers_never_share_a_run_and_never_idle(pg_url, tmp_path):
    with Store.open(pg_url) as store:
        store.enqueue("g", rows(N_RUNS))
    flags = tmp_path / "flags"
    flags.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, pg_url, f"c{i}", str(flags)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(N_CLAIMERS)]
    from orchhelp import wait_for

    wait_for(lambda: len(list(flags.iterdir())) == N_CLAIMERS, 600, "the claimers to be ready")
    (flags / "go").touch()
    claimed, empties, per_proc = [], [], []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        answer = json.loads(out)
        claimed += answer["got"]
        empties += answer["empty"]
        per_proc.append(len(answer["got"]))
    assert len(claimed) == N_RUNS and len(set(claimed)) == N_RUNS  # every run exactly once
    assert sum(n > 0 for n in per_proc) >= 2  # they competed
    # FOR UPDATE SKIP LOCKED: an empty answer can only come when every queued row was locked by one of
    # the seven other claimers. The old rule (all claimers race for the first row) comes back empty with
    # hundreds queued.
    assert all(n <= N_CLAIMERS - 1 for n in empties), sorted(empties)[-5:]
    with Store.open(pg_url) as store:
        assert store.plan("g")["succeeded"] == N_RUNS
        kinds = store.run_events(claimed[0])["kind"].tolist()
        assert kinds == ["enqueued", "claimed", "epoch", "succeeded"]
