"""What a new user types, and the mistakes people make: each one line on stderr with exit code 2 (or
the plan they asked for), nothing enqueued. In-process (CliRunner) except where the environment
matters (CUDA_VISIBLE_DEVICES: a subprocess)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launch"))
from orchhelp import TINY_BASE, grid_file, imacsr  # noqa: E402

from imacsr_cli.cli.app import app  # noqa: E402
from imacsr_cli.spec.resolve import resolve  # noqa: E402
from imacsr_cli.spec.runspec import RunSpec, set_dotted  # noqa: E402
from imacsr_cli.store import Store  # noqa: E402


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMACSR_DB", raising=False)
    monkeypatch.delenv("IMACSR_DATA", raising=False)
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line_error(r, message: str) -> None:
    assert (r.exit_code, r.output) == (2, f"error: {message}\n")


def expected_id(base_toml: str, **dotted) -> str:
    """A run id computed from the spec itself (not from the grid machinery)."""
    import tomllib

    tree = tomllib.loads(base_toml)["base"]
    for k, v in dotted.items():
        set_dotted(tree, k, v)
    return resolve(RunSpec.from_dict(tree)).run_id


# ---- numbers on the command line ------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--lease", "nan"], "--lease: expected a number of seconds in [5, 604800], got nan"),
    (["--lease", "inf"], "--lease: expected a number of seconds in [5, 604800], got inf"),
    (["--lease", "1"], "--lease: expected a number of seconds in [5, 604800], got 1.0"),
    (["--timeout", "nan"], "--timeout: expected a number of seconds in [10, 604800], got nan"),
    (["--timeout", "5"], "--timeout: expected a number of seconds in [10, 604800], got 5.0"),
    (["--jobs", "0"], "--jobs: expected an integer in [1, 1024], got 0"),
    (["--jobs", "100000000000"], "--jobs: expected an integer in [1, 1024], got 100000000000"),
    (["--per-gpu", "0"], "--per-gpu: expected an integer in [1, 64], got 0"),
    (["--retries", "-1"], "--retries: expected an integer in [0, 100], got -1"),
    (["--max-runs", "0"], "--max-runs: expected an integer in [1, 10000000], got 0"),
    (["--json"], "--json goes with --plan (it prints the plan as JSON)"),
])
def test_run_grid_numbers_are_validated_before_anything(here, args, message):
    grid_file(here, "one")
    one_line_error(invoke("run-grid", "one.toml", *args), message)
    assert not (here / "results").exists()


def test_other_commands_numbers(here):
    one_line_error(invoke("status", "--watch", "--interval", "nan"),
                   "--interval: expected a number of seconds in [0.2, 86400], got nan")
    one_line_error(invoke("models", "--classes", "0"), "--classes: expected an integer in [1, 1000], got 0")


def test_gpus_that_are_not_visible_are_a_plan_time_error(tmp_path):
    grid_file(tmp_path, "one")
    r = imacsr(["run-grid", "one.toml", "--gpus", "7"], tmp_path, CUDA_VISIBLE_DEVICES="0,1")
    assert (r.returncode, r.stdout, r.stderr) == (
        2, "", "error: --gpus 7: GPU 7 is not visible; visible: 0, 1 (CUDA_VISIBLE_DEVICES='0,1')\n")
    r = imacsr(["run-grid", "one.toml", "--gpus", "1,3,5"], tmp_path, CUDA_VISIBLE_DEVICES="0,1,2")
    assert r.stderr == "error: --gpus 1,3,5: GPU 3, 5 are not visible; visible: 0, 1, 2 (CUDA_VISIBLE_DEVICES='0,1,2')\n"
    r = imacsr(["run-grid", "one.toml", "--gpus", "0"], tmp_path, CUDA_VISIBLE_DEVICES="")
    assert (r.returncode, r.stderr) == (
        2, "error: --gpus 0: no GPU is visible (CUDA_VISIBLE_DEVICES=''); leave --gpus out or give --gpus cpu\n")
    # A visible GPU passes the check (the plan says where the runs go; nothing is trained).
    r = imacsr(["run-grid", "one.toml", "--gpus", "1", "--plan"], tmp_path, CUDA_VISIBLE_DEVICES="0,1")
    assert r.returncode == 0 and "slots: 1 on GPU 1 (1 per GPU)" in r.stdout
    assert not (tmp_path / "results").exists()


# ---- --set ----------------------------------------------------------------------------------------

def test_run_grid_set_overrides_base(here):
    grid_file(here, "g", sweep={"points.count": [1, 2]})
    r = invoke("run-grid", "g.toml", "--set", "train.epochs=1", "--set", "data.num_val=3", "--plan")
    assert r.exit_code == 0, r.output
    base = "[base]" + TINY_BASE.format(epochs=2).split("[base]")[1]
    want = [expected_id(base, **{"train.epochs": 1, "data.num_val": 3, "train.seed": 0, "points.count": n})
            for n in (1, 2)]
    listed = [line.split()[0] for line in r.output.splitlines() if re.match(r"^[0-9a-f]{12} ", line)]
    assert listed == want
    # The sweep still wins over [base], as it does over the file's [base].
    r = invoke("run-grid", "g.toml", "--set", "points.count=5", "--plan")
    assert [line.split()[0] for line in r.output.splitlines() if re.match(r"^[0-9a-f]{12} ", line)] == \
        [expected_id(base, **{"train.seed": 0, "points.count": n}) for n in (1, 2)]


@pytest.mark.parametrize("command", ["run-grid", "train"])
def test_a_bad_set_is_blamed_on_the_set_not_the_file(here, command):
    grid_file(here, "g")
    (here / "spec.toml").write_text(TINY_BASE.format(epochs=1).replace("[base]", ""))
    target = "g.toml" if command == "run-grid" else "spec.toml"
    one_line_error(invoke(command, target, "--set", "points.cnt=2"),
                   "--set points.cnt=2: unknown key 'points.cnt'; expected one of count, names, position, spacing")
    one_line_error(invoke(command, target, "--set", "optim.lr=nan"),
                   "--set optim.lr=nan: key 'optim.lr': expected a number in (0, 10], got nan")
    one_line_error(invoke(command, target, "--set", "train.epochs"),
                   "--set 'train.epochs': expected KEY=VALUE, e.g. train.epochs=2")
    if command == "run-grid":
        one_line_error(invoke(command, target, "--set", "train.seed=3"),
                       f"--set train.seed=3: [grid] seeds is the seed axis of {here}/g.toml; the grid sets "
                       "train.seed itself")


# ---- train ----------------------------------------------------------------------------------------

def test_train_given_a_grid_file_hints_at_run_grid(here):
    grid_file(here, "g")
    one_line_error(invoke("train", "g.toml"),
                   "g.toml: is a grid file (it has [grid]), not a run spec; run it with `imacsr run-grid g.toml`")


def test_train_run_dir_that_is_a_file(here):
    (here / "spec.toml").write_text(TINY_BASE.format(epochs=1).replace("[base]", ""))
    (here / "afile").write_text("x")
    one_line_error(invoke("train", "spec.toml", "--run-dir", "afile"), "--run-dir afile: is a file, expected a directory")
    one_line_error(invoke("train", "spec.toml", "--run-dir", "afile/sub"),
                   "--run-dir afile/sub: cannot create it: Not a directory")


# ---- the plan -------------------------------------------------------------------------------------

SHARED = """
[grid]
name = "shared"
labels = { table = "vi" }
""" + TINY_BASE.format(epochs=1) + """
[sweep]
"points.count" = [1, 2]

[[include]]
"points.count" = 2
labels = { figure = "4" }
"""


def test_plan_lists_every_run_with_its_state_and_cells(here):
    (here / "shared.toml").write_text(SHARED)
    base = "[base]" + TINY_BASE.format(epochs=1).split("[base]")[1]
    one, two = (expected_id(base, **{"points.count": n}) for n in (1, 2))
    r = invoke("run-grid", "shared.toml", "--plan")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[2:] == [
        "note: 1 row is the same run as another row, kept once (one run fills several cells; --verbose lists them)",
        "",
        "RUN           STATE  DIFFERS FROM [base]  CELLS",
        f"{one}  new    points.count=1       table=vi",
        f"{two}  new    points.count=2       table=vi; table=vi,figure=4",
    ]
    verbose = invoke("run-grid", "shared.toml", "--plan", "--verbose").output.splitlines()
    assert verbose[2] == (f"note: {here}/shared.toml: [[include]] #1 (points.count=2) is the same run as [sweep] "
                          "(points.count=2); kept once; its labels were added to that run as another cell")
    doc = json.loads(invoke("run-grid", "shared.toml", "--plan", "--json").output)
    assert doc["counts"] == {"runs": 2, "total": 2, "new": 2, "queued": 0, "running": 0, "succeeded": 0, "failed": 0, "orphaned": 0,
                             "cancelled": 0, "cannot_run": 0, "missing": 0}
    assert [(x["run_id"], x["state"], x["overrides"], x["cells"], x["where"]) for x in doc["runs"]] == [
        (one, "new", {"points.count": 1}, [{"table": "vi"}], ["[sweep]"]),
        (two, "new", {"points.count": 2}, [{"table": "vi"}, {"table": "vi", "figure": "4"}], ["[sweep]", "[[include]] #1"]),
    ]
    assert not (here / "results").exists()
    # With a database, the states come from it.
    with Store.open("sqlite:///results/imacsr.db") as store:
        store.upsert_grid("shared")
        store.enqueue("shared", [{"run_id": one, "spec": {}, "labels": []}])
        store.cancel(one)
    lines = invoke("run-grid", "shared.toml", "--plan").output.splitlines()
    assert lines[0].endswith("2 runs — 1 new, 0 already done, 0 failed, 0 running elsewhere, 1 cancelled")
    assert lines[-2].startswith(f"{one}  cancelled  points.count=1")


def test_unknown_model_counts_add_up(here):
    grid_file(here, "u", sweep={"model.name": ["deeplabv3plus", "nosuchmodel"]})
    r = invoke("run-grid", "u.toml")
    assert r.exit_code == 2
    assert r.output.splitlines()[0] == (f"grid u ({here}/u.toml): 2 runs — 1 new, 0 already done, 0 failed, "
                                        "0 running elsewhere, 1 cannot run")
    assert r.output.splitlines()[-1] == "error: grid u: some runs cannot run (see above); nothing enqueued"


def test_max_runs(here):
    grid_file(here, "big", sweep={"points.count": [1, 2, 3], "points.spacing": [1, 2]}, seeds=(0, 1))
    one_line_error(invoke("run-grid", "big.toml", "--max-runs", "11", "--plan"),
                   f"{here}/big.toml: the grid makes 12 runs, more than --max-runs 11; shrink a sweep, or raise "
                   "--max-runs if you mean it")
    assert invoke("run-grid", "big.toml", "--max-runs", "12", "--plan").exit_code == 0
    values = ", ".join(str(v) for v in range(1, 101))
    (here / "huge.toml").write_text(TINY_BASE.format(epochs=1) + f'[sweep]\n"train.epochs" = [{values}]\n'
                                    f'"data.num_val" = [{values}]\n"train.eval_every" = [{values}]\n')
    one_line_error(invoke("run-grid", "huge.toml", "--plan"),
                   f"{here}/huge.toml: the grid makes 1,000,000 runs, more than --max-runs 10,000; shrink a sweep, "
                   "or raise --max-runs if you mean it")


# ---- paths checked at plan time -------------------------------------------------------------------

@pytest.mark.parametrize("weights, cause", [
    ("nope.pth", "nope.pth does not exist (expected a local torch checkpoint, e.g. resnet18.pth)"),
    ("adir", "adir is a directory, expected a torch checkpoint file"),
    ("/etc/passwd", "/etc/passwd is not a torch checkpoint (neither a zip archive nor a pickle, by its first bytes)"),
])
def test_model_weights_checked_at_plan_time(here, weights, cause):
    (here / "adir").mkdir()
    grid_file(here, "w", sweep={"points.count": [1, 2]})
    r = invoke("run-grid", "w.toml", "--set", f'model.weights="{weights}"')
    assert r.exit_code == 2
    assert f"cannot run: 2 runs: key 'model.weights': {cause}" in r.output.splitlines()
    assert not (here / "results").exists()


def test_model_weights_that_look_like_a_checkpoint_pass(here):
    import torch

    torch.save({"w": torch.zeros(1)}, here / "ok.pth")
    grid_file(here, "w")
    r = invoke("run-grid", "w.toml", "--set", 'model.weights="ok.pth"', "--plan")
    assert r.exit_code == 0 and "cannot run" not in r.output


def test_data_root_checked_at_plan_time(here):
    (here / "afile").write_text("x")
    grid_file(here, "d")
    r = invoke("run-grid", "d.toml", "--set", "data.name=cityscapes", "--set", 'data.root="afile"',
               "--set", "data.num_train=0")
    assert "cannot run: 1 run needs dataset 'cityscapes' at afile, which is a file, expected a directory " \
           "(set data.root or IMACSR_DATA)" in r.output.splitlines()
    (here / "etc").mkdir()
    r = invoke("run-grid", "d.toml", "--set", "data.name=cityscapes", "--set", 'data.root="etc"',
               "--set", "data.num_train=0")
    assert r.exit_code == 2
    assert ("cannot run: 1 run needs dataset 'cityscapes' at etc, which is not a cityscapes tree: missing "
            "leftImg8bit/train (expected leftImg8bit/{train,val} and gtFine/{train,val} under the root)"
            in r.output.splitlines())


# ---- report ---------------------------------------------------------------------------------------

def test_report_out_is_a_file_and_csv_of_several_tables(here):
    (here / "afile").write_text("x")
    one_line_error(invoke("report", "--all", "--out", "afile"),
                   "--out afile: is a file, expected a directory (the report writes one file per table and figure "
                   "into it)")
    one_line_error(invoke("report", "--all", "--format", "csv"),
                   "--format csv prints one table, and this report has 5: give --out DIR (one .csv each) or one "
                   "--table / --figure")
    one_line_error(invoke("report", "--table", "iv", "--out", "afile/sub"),
                   "--out afile/sub: cannot write there: afile is a file")


# ---- help and version -----------------------------------------------------------------------------

COMMANDS = [[], ["run-grid"], ["status"], ["train"], ["models"], ["report"], ["runs"], ["runs", "show"],
            ["runs", "logs"], ["runs", "retry"], ["runs", "rerun"], ["runs", "cancel"], ["spec"], ["spec", "keys"],
            ["spec", "show"], ["data"], ["data", "check"], ["data", "fake"]]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "imacsr" for c in COMMANDS])
def test_help_is_plain_and_every_option_is_explained(command):
    short = invoke(*command, "-h")
    assert short.exit_code == 0 and short.output == invoke(*command, "--help").output
    text = short.output
    assert "<bool>" not in text and not re.search(r"\s\.(\s|$)", text) and "╭" not in text
    # Every option (a line "  --name ...") has a help text: after it, or on the next line when it is long.
    options = text.split("Options:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    for i, line in enumerate(options):
        if line.startswith("  -") and not re.search(r"\S  +\S", line.strip()):
            assert i + 1 < len(options) and re.match(r"^ {10,}\S", options[i + 1]), line


def test_version():
    from imacsr_cli import __version__

    r = invoke("--version")
    assert (r.exit_code, r.output) == (0, f"imacsr {__version__}\n")


def test_spec_keys_shows_each_range():
    lines = invoke("spec", "keys").output.splitlines()
    assert "optim.lr             0.0003           learning rate (Table III); a number in (0, 10]" in lines
    assert "optim.betas          [0.9, 0.999]     Adam betas (Table III); each a number in [0, 1)" in lines


@pytest.mark.parametrize("args, message", [
    (["run-grid", "--bogus"], "No such option: --bogus (Possible options: --gpus, --jobs, --verbose) "
                              "(see 'imacsr run-grid -h')"),
    (["runz"], "No such command 'runz'. Did you mean 'runs'? (see 'imacsr -h')"),
    (["run-grid"], "Missing argument 'path' (see 'imacsr run-grid -h')"),
    (["status", "--interval", "abc"], "Invalid value for '--interval': Input should be a valid number, unable "
                                      "to parse string as a number (see 'imacsr status -h')"),
])
def test_a_usage_mistake_is_one_line_too(tmp_path, args, message):
    # A real process running the `imacsr` entry point (argv[0] named so): the one-line form is main()'s.
    entry = "import sys; sys.argv[0] = 'imacsr'; from imacsr_cli.cli.app import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", entry,
                        *args], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"error: {message}\n")


def test_bare_commands_still_print_their_help(tmp_path):
    r = subprocess.run([sys.executable, "-m", "imacsr_cli", "runs"], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert r.returncode == 2 and r.stderr.startswith("Usage: ") and "retry" in r.stderr
