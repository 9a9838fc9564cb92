"""Every number of a spec is range-checked as it is read: finite, within what the run, the machine and
the database can hold, with one line naming the file, the key and the allowed range."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from imacsr_cli.errors import SpecError, UsageError
from imacsr_cli.spec import ranges
from imacsr_cli.spec.grid import GridSpec
from imacsr_cli.spec.ranges import Range, check_option
from imacsr_cli.spec.runspec import RunSpec, _key_of

BASE = '[base]\nmodel.name = "deeplabv3plus"\ndata.name = "synthetic"\n'


def _numeric_keys() -> set[str]:
    """Every dotted key whose type holds an int or a float (scalars, pairs, lists, unions)."""
    out = set()
    for section, sub in typing.get_type_hints(RunSpec).items():
        for f in dataclasses.fields(sub):
            text = str(typing.get_type_hints(sub)[f.name])
            if "int" in text or "float" in text:
                out.add(f"{section}.{_key_of(f)}")
    return out


def test_every_numeric_key_has_a_range_and_no_other_key_does():
    assert set(ranges.SPEC_RANGES) == _numeric_keys()


@pytest.mark.parametrize("key, value, message", [
    ("optim.lr", "nan", "expected a number in (0, 10], got nan"),
    ("optim.lr", "inf", "expected a number in (0, 10], got inf"),
    ("optim.lr", "1e308", "expected a number in (0, 10], got 1e+308"),
    ("optim.lr", "0", "expected a number in (0, 10], got 0.0"),
    ("method.alpha", "nan", "expected a number in [0, 1000], got nan"),
    ("method.alpha", "inf", "expected a number in [0, 1000], got inf"),
    ("method.alpha", "[0.1, nan, 0.3]", "expected a number in [0, 1000] for each value, got nan"),
    ("method.lambda", "nan", "expected a number in [-1000, 1000], got nan"),
    ("method.lambda", "-inf", "expected a number in [-1000, 1000], got -inf"),
    ("optim.betas", "[1.5, 2.0]", "expected a number in [0, 1) for each value, got 1.5"),
    ("optim.betas", "[nan, 0.999]", "expected a number in [0, 1) for each value, got nan"),
    ("optim.betas", "[0.9, 1.0]", "expected a number in [0, 1) for each value, got 1.0"),
    ("optim.weight_decay", "-1e-4", "expected a number in [0, 10], got -0.0001"),
    ("data.num_train", "1000000000000000", "expected an integer in [0, 10000000], got 1000000000000000"),
    ("data.train_size", "[100000, 100000]",
     "expected an integer of pixels in [0, 8192] for each value, got 100000"),
    ("data.workers", "1000000", "expected an integer in [-1, 256], got 1000000"),
    ("data.scale_range", "[0.5, inf]", "expected a number in [0, 16] for each value, got inf"),
    ("train.epochs", "100000000000000000000", "expected an integer in [1, 100000], got 100000000000000000000"),
    ("train.epochs", "0", "expected an integer in [1, 100000], got 0"),
    ("train.batch_size", "1", "expected an integer in [2, 4096], got 1"),
    ("train.seed", "9223372036854775807", "expected an integer in [0, 2147483647], got 9223372036854775807"),
    ("train.eval_every", "0", "expected an integer in [1, 100000], got 0"),
    ("points.count", "1000", "expected an integer in [0, 64], got 1000"),
])
def test_a_number_out_of_range_is_one_line_naming_file_key_and_range(tmp_path, key, value, message):
    path = tmp_path / "g.toml"
    path.write_text(f"{BASE}{key} = {value}\n")
    with pytest.raises(SpecError) as err:
        GridSpec.load(path)
    assert str(err.value) == f"{path} [base]: key '{key}': {message}"
    # The same rule everywhere a spec is read: a sweep value, a run spec file, spec.json.
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'{BASE}[sweep]\n"{key}" = [{value}]\n')
    with pytest.raises(SpecError) as err:
        GridSpec.load(sweep)
    assert str(err.value) == f"{sweep} [sweep]: key '{key}': {message}"


def test_seeds_beyond_the_database_are_refused_at_plan_time(tmp_path):
    for seeds, got in (("[0, 100000000000000000000]", "100000000000000000000"),
                       ("[9223372036854775807]", "9223372036854775807"), ("[-1]", "-1")):
        with pytest.raises(SpecError) as err:
            GridSpec.from_text(f"[grid]\nseeds = {seeds}\n{BASE}", source="g.toml").expand()
        assert str(err.value) == f"g.toml [grid]: key 'seeds': expected an integer in [0, 2147483647], got {got}"
    # A float seed is a wrong type, said as before.
    with pytest.raises(SpecError, match=r"key 'seeds': expected a non-empty list of integers"):
        GridSpec.from_text(f"[grid]\nseeds = [1e20]\n{BASE}", source="g.toml")


def test_the_edges_of_each_range_are_allowed():
    spec = RunSpec.from_dict({"optim": {"lr": 10, "betas": [0.0, 0.999999], "weight_decay": 0},
                              "method": {"alpha": [0, 1000], "lambda": -1000},
                              "train": {"epochs": 100000, "batch_size": 4096, "seed": 2**31 - 1},
                              "data": {"num_train": 10_000_000, "workers": 256, "train_size": [8192, 8192]}})
    assert spec.optim.lr == 10.0 and spec.train.seed == 2**31 - 1


def test_fewer_training_images_than_one_batch_is_caught_at_plan_time():
    text = f"{BASE}data.num_train = 4\ntrain.batch_size = 8\n"
    with pytest.raises(SpecError) as err:
        GridSpec.from_text(text, source="g.toml").expand()
    assert str(err.value) == ("g.toml [base] (base): key 'data.num_train': 4 training images make no batch of "
                              "train.batch_size 8 (the last incomplete batch is dropped); expected at least 8")
    # One full batch is enough; 0 means "all" (the dataset's default, 64 for synthetic).
    GridSpec.from_text(f"{BASE}data.num_train = 8\ntrain.batch_size = 8\n").expand()
    GridSpec.from_text(f"{BASE}data.num_train = 0\ntrain.batch_size = 64\n").expand()
    with pytest.raises(SpecError, match=r"64 training images make no batch of train.batch_size 65"):
        GridSpec.from_text(f"{BASE}train.batch_size = 65\n").expand()


def test_range_closed_form():
    r = Range(0, 1, hi_open=True)
    assert [r.allows(v) for v in (0, 0.5, 1, -0.0, math.nan, math.inf, True, "0.5")] == \
        [True, True, False, True, False, False, False, False]
    i = Range(1, 3, integer=True)
    assert [i.allows(v) for v in (0, 1, 3, 4, 2.0)] == [False, True, True, False, False]
    assert Range(0, 10, lo_open=True).text() == "a number in (0, 10]"
    assert Range(5, 86400, what="seconds").text() == "a number of seconds in [5, 86400]"


@pytest.mark.parametrize("name, value, message", [
    ("--lease", math.nan, "--lease: expected a number of seconds in [5, 604800], got nan"),
    ("--lease", math.inf, "--lease: expected a number of seconds in [5, 604800], got inf"),
    ("--timeout", math.nan, "--timeout: expected a number of seconds in [10, 604800], got nan"),
    ("--timeout", 5.0, "--timeout: expected a number of seconds in [10, 604800], got 5.0"),
    ("--jobs", 0, "--jobs: expected an integer in [1, 1024], got 0"),
    ("--max-runs", 0, "--max-runs: expected an integer in [1, 10000000], got 0"),
])
def test_command_line_numbers_follow_the_same_rule(name, value, message):
    with pytest.raises(UsageError) as err:
        check_option(name, value)
    assert str(err.value) == message and err.value.exit_code == 2
    assert check_option(name, None) is None  # an option not given
