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
    ("empty_file", "",
     "{f}: no runs: expected a [base], [sweep], [[zip]], [[block]] or [[include]] table (an empty grid would train "
     "one default run)"),
    ("only_grid_table", '[grid]\ntitle = "nothing"\n',
     "{f}: no runs: expected a [base], [sweep], [[zip]], [[block]] or [[include]] table (an empty grid would train "
     "one default run)"),
    ("quoted_and_dotted", BASE + '[sweep]\n"points.count" = [1, 2]\npoints.count = [3]\n',
     "{f} [sweep]: key 'points.count' is given twice (written quoted and dotted); give it once"),
    ("quoted_and_dotted_in_include", BASE + '[[include]]\n"points.count" = 1\npoints = { count = 2 }\n',
     "{f} [[include]] #1: key 'points.count' is given twice (written quoted and dotted); give it once"),
    ("nested_inline_tables", "a = " + "{ b = " * 3000 + "1" + " }" * 3000 + "\n",
     "{f}: tables or lists nested too deeply (at most 16 levels)"),
    ("nested_lists", "a = " + "[" * 400 + "]" * 400 + "\n",
     "{f}: tables or lists nested too deeply (at most 16 levels)"),
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


def test_non_utf8_bytes_are_one_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[grid]\ntitle = "caf\xe9"\n[base]\n')
    with pytest.raises(SpecError) as err:
        GridSpec.load(path)
    assert str(err.value) == f"{path}: not UTF-8 text: byte 0xe9 at line 2; TOML files must be UTF-8"


def test_a_file_name_that_is_no_grid_name_is_blamed_on_the_file_name(tmp_path):
    path = tmp_path / "my grid.toml"
    path.write_text(BASE)
    with pytest.raises(SpecError) as err:
        GridSpec.load(path)
    assert str(err.value) == (f"{path}: the file name gives the grid name 'my grid', which is not one; expected "
                              "letters, digits, '_', '-' or '.': rename the file or set [grid] name")
    path.write_text('[grid]\nname = "mine"\n' + BASE)
    assert GridSpec.load(path).name == "mine"


def test_a_directory_given_as_a_grid_says_so(tmp_path, monkeypatch):
    from imacsr_cli.errors import NotFound
    from imacsr_cli.spec.gridfile import experiments_dirs, find_grid

    (tmp_path / "grids").mkdir()
    (tmp_path / "grids" / "a.toml").write_text(BASE)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as err:
        find_grid("grids")
    assert str(err.value) == f"{tmp_path}/grids: is a directory, expected a grid file (.toml), e.g. grids/a.toml"
    # Not found: each folder it looked in once.
    with pytest.raises(NotFound) as err:
        find_grid("nope")
    where = [str(tmp_path), *(str(d) for d in experiments_dirs())]
    assert str(err.value) == f"grid file 'nope' not found (looked in {', '.join(where)})"


def test_the_size_of_a_grid_is_computed_before_it_is_expanded():
    sweep = "".join(f'"train.{k}" = [{", ".join(str(v) for v in range(2, 12))}]\n'
                    for k in ("epochs", "batch_size"))
    text = '[grid]\nseeds = [0, 1, 2]\n' + BASE + "[sweep]\n" + sweep + '[[include]]\n"method.name" = "conventional"\n'
    grid = GridSpec.from_text(text, source="g.toml")
    assert grid.size() == (10 * 10 + 1) * 3
    grid.check_size(303)
    with pytest.raises(SpecError) as err:
        grid.check_size(302)
    assert str(err.value) == ("g.toml: the grid makes 303 runs, more than --max-runs 302; shrink a sweep, or raise "
                              "--max-runs if you mean it")
    # A million combinations: refused from the axes' lengths alone (nothing is built).
    huge = BASE + "[sweep]\n" + "".join(f'"points.{k}" = [{", ".join(["1"] * 100)}]\n' for k in ("count", "spacing"))
    huge += '"method.alpha" = [' + ", ".join(["0.1"] * 100) + "]\n"
    grid = GridSpec.from_text(huge, source="h.toml")
    assert grid.size() == 10**6
    with pytest.raises(SpecError, match=r"^h.toml: the grid makes 1,000,000 runs, more than --max-runs 10,000;"):
        grid.check_size(10_000)
    # The count matches the expansion on a small grid (before exclusions and shared runs).
    small = GridSpec.from_text('[grid]\nseeds = [0, 1]\n' + BASE + '[sweep]\n"points.count" = [1, 2]\n'
                               '[[include]]\n"method.name" = "conventional"\n')
    assert small.size() == len(small.raw_rows()) * 2 == 6 and len(small.expand()) == 6
