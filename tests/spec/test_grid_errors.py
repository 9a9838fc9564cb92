"""Every bad-grid case gives one SpecError line: file, table, key, what was expected."""

from __future__ import annotations

import pytest

from imacsr_cli.errors import SpecError
from imacsr_cli.spec.grid import GridSpec

BASE = '[base]\nmodel.name = "deeplabv3plus"\ndata.name = "synthetic"\n'

CASES = [
    ("toml_syntax", '[grid]\nname = "x\n',
     "{f}: TOML syntax error: Illegal character '\\n' (at line 2, column 10)"),
    ("unknown_table", BASE + '[sweeps]\n"points.count" = [1]\n',
     "{f}: unknown table 'sweeps'; expected one of grid, base, sweep, zip, block, include, exclude, slurm"),
    ("unknown_grid_key", '[grid]\ntitel = "x"\n' + BASE,
     "{f} [grid]: unknown key 'titel'; expected one of name, title, reproduces, description, seeds, labels"),
    ("unknown_key", BASE + '[sweep]\n"points.cnt" = [1, 2]\n',
     "{f} [sweep]: unknown key 'points.cnt'; expected one of count, names, position, spacing"),
    ("unknown_section", BASE + '[sweep]\n"point.count" = [1, 2]\n',
     "{f} [sweep]: unknown key 'point'; expected one of data, method, model, optim, points, train"),
    ("unknown_key_in_base", '[base]\nmodel.nam = "x"\n',
     "{f} [base]: unknown key 'model.nam'; expected one of name, variant, weights"),
    ("wrong_type", BASE + '[sweep]\n"points.count" = [1, "two"]\n',
     "{f} [sweep]: key 'points.count': expected an integer, got str 'two'"),
    ("bad_literal", BASE + '[sweep]\n"points.position" = ["input", "middle"]\n',
     "{f} [sweep]: key 'points.position': expected one of 'input', 'central', 'output', got str 'middle'"),
    ("empty_sweep", BASE + '[sweep]\n"points.count" = []\n',
     "{f} [sweep]: key 'points.count': empty list; expected at least one value"),
    ("sweep_not_a_list", BASE + '[sweep]\n"points.count" = 3\n',
     "{f} [sweep]: key 'points.count': expected a list of values, got int 3"),
    ("list_where_scalar_expected", '[base]\npoints.count = [1, 2]\n',
     "{f} [base]: key 'points.count': expected an integer, got a list [1, 2]"),
    ("list_in_include", BASE + '[[include]]\n"train.epochs" = [1, 2]\n',
     "{f} [[include]] #1: key 'train.epochs': expected an integer, got a list [1, 2]"),
    ("zip_lengths", BASE + '[[zip]]\n"points.count" = [1, 2, 3]\n"labels.series" = ["I", "II"]\n',
     "{f} [[zip]] #1: lists of different lengths: 'points.count' has 3 values, 'labels.series' has 2; "
     "zipped lists must be of equal length"),
    ("points_do_not_fit", BASE + '[sweep]\n"points.count" = [4, 5]\n"points.spacing" = [3]\n',
     "{f} [sweep] (points.count=5, points.spacing=3): key 'points': 5 points at spacing 3 span 13 positions "
     "but deeplabv3plus (smp) has 11 candidate points; at spacing 3 at most 4 fit"),
    ("empty_seeds", '[grid]\nseeds = []\n' + BASE,
     "{f} [grid]: key 'seeds': expected a non-empty list of integers, got a list []"),
    ("key_twice", BASE + '[sweep]\n"points.count" = [1, 2]\n[[zip]]\n"points.count" = [1, 2]\n',
     "{f} [[zip]] #1: key 'points.count' is also set in [sweep]; give it in one place"),
    ("seed_and_seeds", '[grid]\nseeds = [0, 1]\n' + BASE + '[[include]]\n"train.seed" = 3\n',
     "{f} [[include]] #1: key 'train.seed': [grid] seeds is the seed axis; set one of them"),
    ("unknown_block_key", BASE + '[[block]]\nsweeep = { "points.count" = [1] }\n',
     "{f} [[block]] #1: unknown key 'sweeep'; expected one of name, labels, set, sweep, zip"),
    ("bad_grid_name", '[grid]\nname = "a b"\n' + BASE,
     "{f} [grid]: key 'name': expected letters, digits, '_', '-' or '.', got 'a b'"),
    ("label_not_a_string", BASE + '[[include]]\nlabels = { figure = [3] }\n',
     "{f} [[include]] #1: key 'labels.figure': expected a string, got a list [3]"),
    ("empty_exclude", BASE + '[[exclude]]\n',
     "{f} [[exclude]] #1: empty table; expected keys to match, e.g. \"points.count\" = 5"),
    ("alpha_list_wrong_length", BASE + '[[include]]\n"points.count" = 2\n"method.alpha" = [0.1, 0.2, 0.3]\n',
     "{f} [[include]] #1 (points.count=2, method.alpha=[0.1, 0.2, 0.3]): key 'method.alpha': expected a number "
     "or 2 numbers (one per point), got 3"),
]


@pytest.mark.parametrize("case_id,text,message", CASES, ids=[c[0] for c in CASES])
def test_bad_grid(tmp_path, case_id, text, message):
    path = tmp_path / f"{case_id}.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        GridSpec.load(path).expand()
    assert str(err.value) == message.format(f=path)
    assert "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_missing_file(tmp_path):
    with pytest.raises(SpecError) as err:
        GridSpec.load(tmp_path / "nope.toml")
    assert str(err.value) == f"{tmp_path / 'nope.toml'}: file not found"
