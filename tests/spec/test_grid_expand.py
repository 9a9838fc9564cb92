"""GridSpec expansion: product, zip, blocks, include, exclude, seeds, dedup (table-driven, real TOML)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imacsr_cli.spec.grid import GridSpec

BASE = """
[base]
model.name = "deeplabv3plus"
data.name = "synthetic"
train.epochs = 2
"""


def load(tmp_path: Path, body: str, name: str = "g.toml", base: str = BASE) -> GridSpec:
    path = tmp_path / name
    path.write_text(base + body)
    return GridSpec.load(path)


def keys(rows, *fields):
    """Project rows onto (dotted spec field | 'seed' | 'method') tuples."""
    out = []
    for r in rows:
        t = []
        for f in fields:
            if f == "seed":
                t.append(r.seed)
            else:
                section, key = f.split(".")
                t.append(getattr(getattr(r.spec, section), key))
        out.append(tuple(t))
    return out


CASES = [
    # (id, body, fields, expected tuples in order, expected labels per row or None)
    (
        "product",
        '[sweep]\n"points.count" = [1, 2]\n"points.position" = ["input", "central", "output"]\n',
        ("points.count", "points.position"),
        [(1, "input"), (1, "central"), (1, "output"), (2, "input"), (2, "central"), (2, "output")],
        None,
    ),
    (
        "zip",
        '[[zip]]\n"points.count" = [1, 2, 3]\n"labels.series" = ["I", "II", "III"]\n',
        ("points.count",),
        [(1,), (2,), (3,)],
        [[{"series": "I"}], [{"series": "II"}], [{"series": "III"}]],
    ),
    (
        "sweep_then_zip",
        '[sweep]\n"points.position" = ["input", "output"]\n'
        '[[zip]]\n"points.count" = [1, 2]\n"labels.series" = ["I", "II"]\n',
        ("points.position", "points.count"),
        [("input", 1), ("input", 2), ("output", 1), ("output", 2)],
        [[{"series": "I"}], [{"series": "II"}], [{"series": "I"}], [{"series": "II"}]],
    ),
    (
        "include",
        '[grid]\nlabels = { figure = "3" }\n[sweep]\n"points.count" = [1, 2]\n'
        '[[include]]\n"method.name" = "conventional"\nlabels = { role = "baseline" }\n',
        ("method.name", "points.count"),
        [("imacsr", 1), ("imacsr", 2), ("conventional", 0)],
        [[{"figure": "3"}], [{"figure": "3"}], [{"figure": "3", "role": "baseline"}]],
    ),
    (
        "exclude",
        '[sweep]\n"points.count" = [1, 2, 3]\n"points.position" = ["input", "output"]\n'
        '[[exclude]]\n"points.count" = 3\n"points.position" = "output"\n'
        '[[exclude]]\n"points.count" = 1\n',
        ("points.count", "points.position"),
        [(2, "input"), (2, "output"), (3, "input")],
        None,
    ),
    (
        "seeds_are_the_outer_axis",
        '[grid]\nseeds = [0, 1]\n[sweep]\n"points.count" = [1, 2]\n',
        ("seed", "points.count"),
        [(0, 1), (0, 2), (1, 1), (1, 2)],
        None,
    ),
    (
        "exclude_a_seed",
        '[grid]\nseeds = [0, 1]\n[sweep]\n"points.count" = [1, 2]\n[[exclude]]\n"train.seed" = 1\n"points.count" = 2\n',
        ("seed", "points.count"),
        [(0, 1), (0, 2), (1, 1)],
        None,
    ),
    (
        "blocks_union_and_set",
        '[[block]]\nname = "a"\nlabels = { figure = "3" }\nsweep = { "points.count" = [1, 3] }\n'
        '[[block]]\nname = "b"\nlabels = { table = "vi" }\nset = { "points.count" = 2 }\n'
        'sweep = { "points.position" = ["central", "output"] }\n',
        ("points.count", "points.position"),
        [(1, "input"), (3, "input"), (2, "central"), (2, "output")],
        [[{"figure": "3"}], [{"figure": "3"}], [{"table": "vi"}], [{"table": "vi"}]],
    ),
    (
        "dedup_within_a_grid_merges_cells",
        # M=1 ignores spacing (resolve sets it to 1): spacing 1 and 2 are one run.
        '[[block]]\nlabels = { figure = "3" }\nset = { "points.count" = 1 }\n'
        'sweep = { "points.spacing" = [1, 2] }\n'
        '[[block]]\nlabels = { figure = "4" }\nset = { "points.count" = 1, "points.spacing" = 1 }\n',
        ("points.count", "points.spacing"),
        [(1, 1)],
        [[{"figure": "3"}, {"figure": "4"}]],
    ),
    (
        "nested_and_dotted_keys_are_the_same",
        '[[include]]\npoints = { count = 2 }\n[[include]]\n"points.count" = 2\n',
        ("points.count",),
        [(2,)],
        None,
    ),
    (
        "base_only",
        "",
        ("points.count",),
        [(3,)],
        None,
    ),
]


@pytest.mark.parametrize("case_id,body,fields,expected,labels", CASES, ids=[c[0] for c in CASES])
def test_expand(tmp_path, case_id, body, fields, expected, labels):
    grid = load(tmp_path, body)
    rows = grid.expand()
    assert keys(rows, *fields) == expected
    assert all(r.error is None and r.run_id and len(r.run_id) == 12 for r in rows)
    assert [r.index for r in rows] == list(range(len(rows)))
    if labels is not None:
        assert [r.labels for r in rows] == labels
    # run_id is the hash of the resolved spec
    from imacsr_cli.spec.resolve import resolve

    for r in rows:
        assert resolve(r.spec).run_id == r.run_id


def test_expansion_is_deterministic(tmp_path):
    body = '[grid]\nseeds = [2, 0]\n[sweep]\n"points.count" = [1, 2, 3]\n"points.position" = ["input", "output"]\n'
    a = [(r.run_id, r.labels) for r in load(tmp_path, body, "a.toml").expand()]
    b = [(r.run_id, r.labels) for r in load(tmp_path, body, "b.toml").expand()]
    assert a == b and len(a) == 12 and len({r for r, _ in a}) == 12


def test_dedup_warns(tmp_path):
    grid = load(tmp_path, '[[include]]\n"points.count" = 2\n[[include]]\n"points.count" = 2\nlabels = { x = "y" }\n')
    rows = grid.expand()
    assert len(rows) == 1 and rows[0].labels == [{"x": "y"}]
    assert rows[0].sources == ["[[include]] #1", "[[include]] #2"]
    assert grid.warnings == [
        f"{tmp_path / 'g.toml'}: [[include]] #2 (points.count=2) is the same run as [[include]] #1 "
        f"(points.count=2); kept once; its labels were added to that run as another cell"
    ]


def test_unused_exclude_warns(tmp_path):
    grid = load(tmp_path, '[sweep]\n"points.count" = [1, 2]\n[[exclude]]\n"points.count" = 4\n')
    assert len(grid.expand()) == 2
    assert grid.warnings == [f"{tmp_path / 'g.toml'}: [[exclude]] #1 (points.count=4) matches no run"]


def test_exclude_on_labels(tmp_path):
    grid = load(tmp_path, '[[zip]]\n"points.count" = [1, 2]\n"labels.series" = ["I", "II"]\n'
                          '[[exclude]]\n"labels.series" = "II"\n')
    assert [r.labels for r in grid.expand()] == [[{"series": "I"}]]


def test_unknown_model_and_dataset_rows_carry_errors(tmp_path):
    grid = load(
        tmp_path,
        '[grid]\nseeds = [0, 1, 2]\n[sweep]\n"model.name" = ["deeplabv3plus", "nosuchmodel"]\n'
        '"data.name" = ["synthetic", "nosuchdata"]\n"method.name" = ["conventional", "imacsr"]\n',
    )
    rows = grid.expand()
    assert len(rows) == 24
    bad = [r for r in rows if r.error]
    assert len(bad) == 18 and all(r.run_id is None for r in bad)
    assert len(grid.valid_rows()) == 6
    both = next(r for r in bad if r.spec.model.name == "nosuchmodel" and r.spec.data.name == "nosuchdata")
    assert both.error == "model 'nosuchmodel' is not installed; dataset 'nosuchdata' is not installed"
    problems = grid.check()
    assert len(problems) == 2
    assert problems[0].startswith("12 runs need dataset 'nosuchdata', which is not installed (installed: ")
    assert problems[1].startswith("12 runs need model 'nosuchmodel', which is not installed (installed: ")
    assert "deeplabv3plus" in problems[1] and "synthetic" in problems[0]


def test_valid_grid_checks_clean(tmp_path):
    assert load(tmp_path, '[sweep]\n"points.count" = [1, 2]\n').check() == []


def test_grid_metadata(tmp_path):
    grid = load(tmp_path, '[grid]\ntitle = "T"\nreproduces = "Fig. 3"\nseeds = [0]\n', name="my_grid.toml")
    assert (grid.name, grid.title, grid.reproduces, grid.seeds) == ("my_grid", "T", "Fig. 3", (0,))
    assert grid.path == tmp_path / "my_grid.toml" and "reproduces" in grid.toml_text
    named = load(tmp_path, '[grid]\nname = "other"\n', name="x.toml")
    assert named.name == "other"


def test_from_text():
    grid = GridSpec.from_text(BASE + '[sweep]\n"points.count" = [1, 2]\n', source="inline", default_name="t")
    assert grid.name == "t" and len(grid.expand()) == 2


def test_label_numbers_become_strings(tmp_path):
    grid = load(tmp_path, '[grid]\nlabels = { figure = 3 }\n[[zip]]\n"points.count" = [1]\n"labels.m" = [1]\n')
    assert grid.expand()[0].labels == [{"figure": "3", "m": "1"}]
    assert grid.cells() == {"figure": ["3"], "m": ["1"]}


README_EXAMPLE = '''
[grid]
name = "position_demo"
title = "Impact of the position of the intermediate points"
reproduces = "Table VI"
seeds = [0, 1, 2]
labels = { table = "vi" }

[base]
model.name = "deeplabv3plus"
data.name = "synthetic"
points.spacing = 2

[sweep]
"points.position" = ["input", "central", "output"]

[[zip]]
"points.count" = [1, 2, 3]
"labels.series" = ["I", "II", "III"]

[[include]]
"method.name" = "conventional"
labels = { role = "baseline" }

[[exclude]]
"points.count" = 3
"points.position" = "output"

[[block]]
name = "fig4"
labels = { figure = "4" }
set = { "points.count" = 2 }
sweep = { "points.spacing" = [1, 2, 3] }
'''


def test_readme_example(tmp_path):
    grid = load(tmp_path, README_EXAMPLE, base="")
    rows = grid.expand()
    # (9 - 1 excluded + 1 baseline + 3 spacings - 1 shared with series II/input) × 3 seeds
    assert len(rows) == 11 * 3
    shared = [r for r in rows if r.seed == 0 and r.spec.points.count == 2 and r.spec.points.position == "input"
              and r.spec.points.spacing == 2 and r.spec.method.name == "imacsr"]
    assert len(shared) == 1
    assert shared[0].labels == [{"table": "vi", "series": "II"}, {"table": "vi", "figure": "4"}]
    assert grid.check() == []


def test_block_zip_array_of_tables(tmp_path):
    grid = load(tmp_path, '[[block]]\nlabels = { figure = "x" }\n[[block.zip]]\n"points.count" = [1, 2]\n'
                          '"points.position" = ["input", "output"]\n')
    assert keys(grid.expand(), "points.count", "points.position") == [(1, "input"), (2, "output")]
