"""Cluster options that need no services: the [slurm] table, its CLI options, resources never in a run
id, RUN_DIR checks, the missing-driver line of the CLI, the README's cluster snippets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from orchhelp import REPO, grid_file, imacsr

from imacsr_cli.errors import ImacsrError, SpecError
from imacsr_cli.launch.scheduler import check_runs_dir
from imacsr_cli.launch.slurm import SlurmResources, parse_time
from imacsr_cli.spec.grid import GridSpec


def test_slurm_table_to_submitit_parameters():
    res = SlurmResources.from_table({"partition": "gpu", "time": "1:30:00", "gpus": 2, "cpus_per_task": 8,
                                     "mem": "32G", "account": "lab", "qos": "high", "signal_delay_s": 60,
                                     "extra": ["--constraint=a100", "--exclusive"]}, "g.toml")
    assert res.submitit_parameters() == {
        "signal_delay_s": 60, "stderr_to_stdout": True, "partition": "gpu", "cpus_per_task": 8, "mem": "32G",
        "account": "lab", "qos": "high", "time": 90, "gres": "gpu:2",
        "additional_parameters": {"constraint": "a100", "exclusive": True}}
    # the CLI overrides the file, key by key; None keeps the file's value
    assert res.override(partition="debug", time=None, gpus=0).submitit_parameters()["partition"] == "debug"
    assert "gres" not in res.override(gpus=0).submitit_parameters()
    assert SlurmResources().submitit_parameters()["time"] == 0  # no limit of ours: the partition's


@pytest.mark.parametrize("value, minutes", [(90, 90), ("90", 90), ("1:30:00", 90), ("2-00:00:00", 2880),
                                            ("10:30", 11), ("1-12", 2160)])
def test_slurm_times(value, minutes):
    assert parse_time(value, "t") == minutes


@pytest.mark.parametrize("table, message", [
    ({"gpu": 1}, "g.toml [slurm]: unknown key 'gpu'; expected one of partition, time, gpus, cpus_per_task, mem, "
                 "account, qos, signal_delay_s, extra"),
    ({"gpus": -1}, "g.toml [slurm]: key 'gpus': expected an integer >= 0, got -1"),
    ({"gpus": True}, "g.toml [slurm]: key 'gpus': expected an integer >= 0, got True"),
    ({"time": "soon"}, "g.toml [slurm]: key 'time': expected minutes or a Slurm time like \"1:30:00\" or "
                       "\"2-00:00:00\", got 'soon'"),
    ({"time": 0}, "g.toml [slurm]: key 'time': expected at least 1 minute, got 0"),
    ({"mem": ""}, "g.toml [slurm]: key 'mem': expected a non-empty string, got ''"),
    ({"extra": ["constraint=a100"]}, "g.toml [slurm]: key 'extra': expected a list of sbatch flags like "
                                     "[\"--constraint=a100\"], got ['constraint=a100']"),
])
def test_bad_slurm_tables_are_one_line(table, message):
    with pytest.raises(SpecError) as err:
        SlurmResources.from_table(table, "g.toml")
    assert str(err.value) == message


def test_slurm_table_never_changes_run_ids(tmp_path):
    plain = GridSpec.load(grid_file(tmp_path, "a", seeds=(0, 1)))
    with_slurm = GridSpec.load(grid_file(tmp_path, "a", seeds=(0, 1),
                                         extra='\n[slurm]\npartition = "gpu"\ngpus = 4\ntime = 600\n'))
    assert [r.run_id for r in with_slurm.expand()] == [r.run_id for r in plain.expand()]
    assert with_slurm.slurm == {"partition": "gpu", "gpus": 4, "time": 600}


def test_bad_slurm_table_is_refused_by_run_grid(tmp_path):
    grid_file(tmp_path, "bad", extra='\n[slurm]\ngpu = 1\n')
    r = imacsr(["run-grid", "bad.toml", "--executor", "slurm"], tmp_path)
    assert r.returncode == 2 and "bad.toml [slurm]: unknown key 'gpu'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "results").exists()  # nothing enqueued


def test_runs_dir_must_be_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if subprocess.run(["test", "-w", str(ro)]).returncode == 0:  # root writes anywhere
            pytest.skip("running as root: every folder is writable")
        with pytest.raises(ImacsrError, match=r"--runs-dir .* is not writable .*on a filesystem every scheduler host sees"):
            check_runs_dir(ro / "runs")
    finally:
        ro.chmod(0o700)


def test_runs_dir_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImacsrError, match=r"^--runs-dir .*file/runs is not writable \(Not a directory\); run "
                                          r"directories must be on a filesystem every scheduler host sees, with flock"):
        check_runs_dir(tmp_path / "file" / "runs")
    check_runs_dir(tmp_path / "ok")  # a fine one passes and leaves nothing behind
    assert list((tmp_path / "ok").iterdir()) == []


def test_cli_names_the_extra_when_the_driver_is_missing(tmp_path):
    grid_file(tmp_path, "g")
    for args in (["status"], ["run-grid", "g.toml"]):
        r = imacsr([*args, "--db", "postgresql+psycopg2://u@/x?host=/nowhere"], tmp_path)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip() == ("error: --db postgresql+psycopg2://u@/x?host=/nowhere: the psycopg2 driver is "
                                    "not installed (pip install 'imacsr[postgres]')"), r.stderr


def _cluster_section() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("## On a cluster", 1)[1].split("\n## ", 1)[0]


def test_readme_cluster_snippets_are_valid():
    section = _cluster_section()
    (toml_block,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    import tomllib

    res = SlurmResources.from_table(tomllib.loads(toml_block)["slurm"], "README")
    assert res.gpus == 1 and res.time == 240 and res.extra == ("--constraint=a100",)
    # every option the section names exists on run-grid
    help_text = subprocess.run([sys.executable, "-m", "imacsr_cli", "run-grid", "--help"], capture_output=True,
                               text=True, env={"PYTHONPATH": str(REPO), "COLUMNS": "300", "PATH": "/usr/bin:/bin"},
                               check=True).stdout
    for option in sorted(set(re.findall(r"`(--[a-z-]+)", section)) | {"--executor", "--max-jobs", "--db"}):
        assert option in help_text, option
    assert "pip install 'imacsr[postgres,slurm]'" in section
    extras = (REPO / "pyproject.toml").read_text()
    assert 'postgres = ["psycopg[binary]' in extras and 'slurm = ["submitit' in extras
