"""Schedulers on PostgreSQL, as real processes: a database restart mid-grid, two "hosts" (UTS
namespaces) with a kill -9 of one, and two PID namespaces that share a hostname."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from orchhelp import PYTHON, REPO, env, events, grid_file, starts, wait_for

from imacsr_cli.store import Store

pytestmark = pytest.mark.slow

SERVICES = REPO / ".ci" / "services.sh"


def _needs_root_unshare() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        from services import unavailable

        unavailable("namespaces need root and unshare(1)")


def _cli(args: list[str], cwd: Path, prefix: list[str] | None = None, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([*(prefix or []), PYTHON, "-m", "imacsr_cli", *args], cwd=cwd, env=env(**extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_dir(tmp_path: Path, run_id: str) -> Path:
    return tmp_path / "results" / "runs" / run_id


def _ids(url: str, grid: str) -> list[str]:
    from imacsr_cli.errors import NotFound

    try:
        with Store.open(url, create=False) as store:
            return store.grid_run_ids(grid)
    except NotFound:
        return []


def _postmaster_pid() -> int:
    pidfile = Path(os.environ["IMACSR_SERVICES_DIR"]) / "pg" / "data" / "postmaster.pid"
    return int(pidfile.read_text().split()[0])


def test_a_postgresql_restart_mid_grid_loses_nothing_and_kills_no_trainer(tmp_path, pg_url):
    grid_file(tmp_path, "restart", seeds=(0, 1), epochs=3)  # restart during the slow epoch 2
    p = _cli(["run-grid", "restart.toml", "--db", pg_url, "--jobs", "2", "--lease", "30"], tmp_path,
             IMACSR_TEST_FAULT="slow@2")
    ids = wait_for(lambda: len(_ids(pg_url, "restart")) == 2 and _ids(pg_url, "restart"), 600, "enqueue", proc=p)
    with Store.open(pg_url) as store:
        wait_for(lambda: all(store.get(i).epoch >= 1 for i in ids), 180, "epoch 1 of both runs", proc=p)
    before = _postmaster_pid()
    subprocess.run([str(SERVICES), "pg-restart"], check=True, capture_output=True, timeout=120)
    assert _postmaster_pid() != before  # a new server: every connection was cut
    out, err = p.communicate(timeout=1200)
    assert p.returncode == 0, out + err
    with Store.open(pg_url) as store:
        for run_id in ids:
            rec = store.get(run_id)
            assert rec.state == "succeeded"
            kinds = store.run_events(run_id)["kind"].tolist()
            # one claim, one trainer, no requeue or reclaim: the scheduler waited for the database
            assert kinds.count("claimed") == 1 and "reclaimed" not in kinds and "requeued" not in kinds, kinds
            assert len(starts(_run_dir(tmp_path, run_id))) == 1
            epochs = store.metrics_frame([run_id], split="train", names=["loss"])["epoch"].tolist()
            assert epochs == [1, 2, 3]  # every epoch recorded, including the ones written across the restart


def test_two_hosts_share_a_grid_and_one_reclaims_after_the_other_is_killed(tmp_path, pg_url):
    _needs_root_unshare()
    grid_file(tmp_path, "hosts", seeds=(0, 1), epochs=2)
    lease = "15"

    def host(name: str) -> subprocess.Popen:
        # A UTS namespace: its own hostname, like a second machine that mounts the same run directories.
        cmd = ["unshare", "--uts", "sh", "-c", f'hostname {name} && exec "$@"', "sh"]
        return _cli(["run-grid", "hosts.toml", "--db", pg_url, "--jobs", "1", "--lease", lease], tmp_path, cmd,
                    IMACSR_TEST_FAULT="slow@2")

    a = host("host-a")
    ids = wait_for(lambda: len(_ids(pg_url, "hosts")) == 2 and _ids(pg_url, "hosts"), 600, "enqueue", proc=a)
    b = host("host-b")
    with Store.open(pg_url) as store:
        # host-a is training one of the runs (its trainer started): kill -9 its scheduler now
        def a_busy():
            return [i for i in ids if (r := store.get(i)).state == "running" and r.host == "host-a" and r.trainer_pid]
        victim = wait_for(a_busy, 180, "host-a training a run", proc=a)[0]
        a.send_signal(signal.SIGKILL)
        a.communicate()
        out, err = b.communicate(timeout=1200)
        assert b.returncode == 0, out + err
        for run_id in ids:
            assert store.get(run_id).state == "succeeded"
            kinds = store.run_events(run_id)["kind"].tolist()
            assert kinds.count("succeeded") == 1, kinds
        ev = store.run_events(victim)
        reclaimed = ev[ev["kind"] == "reclaimed"]["detail"].tolist()
        # taken back by host-b after the lease (a pid on another host means nothing), then resumed
        assert len(reclaimed) == 1 and "on host-a: last heartbeat" in reclaimed[0], reclaimed
        assert store.get(victim).host == "host-b"
    assert f"{victim} reclaimed" in out
    run_events = events(_run_dir(tmp_path, victim))
    assert [e["epoch"] for e in run_events if e["event"] == "epoch"] == sorted(
        {e["epoch"] for e in run_events if e["event"] == "epoch"})  # no epoch trained twice


def test_same_hostname_other_pid_namespace_never_takes_a_live_run(tmp_path, pg_url):
    _needs_root_unshare()
    grid_file(tmp_path, "pidns", epochs=3)
    # Scheduler A's pid in its namespace is ~42, a pid that does not exist in B's namespace (and B's pid,
    # 2, is long gone in A's): a bare pid probe across namespaces would call each owner dead.
    spin = "i=0; while [ $i -lt 40 ]; do /bin/true; i=$((i+1)); done; "
    prefix_a = ["unshare", "--pid", "--fork", "sh", "-c", spin + '"$@"', "sh"]
    prefix_b = ["unshare", "--pid", "--fork", "sh", "-c", '"$@"', "sh"]
    args = ["run-grid", "pidns.toml", "--db", pg_url, "--jobs", "1", "--lease", "60"]
    a = _cli(args, tmp_path, prefix_a, IMACSR_TEST_FAULT="slow@2")
    (run_id,) = wait_for(lambda: _ids(pg_url, "pidns"), 600, "enqueue", proc=a)
    with Store.open(pg_url) as store:
        wait_for(lambda: store.get(run_id).trainer_pid, 180, "A's trainer", proc=a)
        assert store.get(run_id).owner_pid > 2
    b = _cli(args, tmp_path, prefix_b)
    out_b, err_b = b.communicate(timeout=1200)
    out_a, err_a = a.communicate(timeout=1200)
    assert (a.returncode, b.returncode) == (0, 0), out_a + err_a + out_b + err_b
    assert "1 runs — 0 new, 0 already done, 0 failed, 1 running elsewhere" in out_b, out_b  # not "orphaned"
    assert re.search(r"trainers? started", out_b) and "0 trainers started" in out_b
    with Store.open(pg_url) as store:
        kinds = store.run_events(run_id)["kind"].tolist()
        assert kinds.count("claimed") == 1 and "reclaimed" not in kinds, kinds
    assert len(starts(_run_dir(tmp_path, run_id))) == 1
