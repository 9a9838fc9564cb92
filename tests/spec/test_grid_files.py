"""The grid files shipped in experiments/, and find_grid's path resolution."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import imacsr_cli
from imacsr_cli.errors import NotFound
from imacsr_cli.spec.grid import GridSpec, find_grid

REPO_EXPERIMENTS = Path(imacsr_cli.__file__).resolve().parent.parent / "experiments"


@pytest.fixture(scope="module")
def grids():
    names = ["demo", "table_iv", "ablations/num_points", "ablations/position", "ablations/spacing"]
    return {g.name: g for g in (GridSpec.load(REPO_EXPERIMENTS / f"{n}.toml") for n in names)}


def test_shipped_grids_expand_and_check(grids):
    sizes = {name: len(g.expand()) for name, g in grids.items()}
    assert sizes == {"demo": 24, "table_iv": 54, "num_points": 18, "position": 30, "spacing": 12}
    for g in grids.values():
        assert g.title and g.reproduces and g.seeds
        # every model/dataset of the paper grids is registered; if one is not, check() must say so
        assert all(r.error is None for r in g.expand()) == (g.check() == [])


def test_paper_grids_share_runs(grids):
    """The conventional baseline (and M=3 input spacing 2) is one run across grids."""
    baseline = {name: {r.run_id for r in g.expand() if r.spec.method.name == "conventional"
                       and r.spec.model.name == "deeplabv3plus" and r.spec.data.name == "cityscapes"}
                for name, g in grids.items() if name != "demo"}
    assert len(baseline["num_points"]) == 3
    assert baseline["num_points"] == baseline["position"] == baseline["spacing"] == baseline["table_iv"]
    m3 = [{r.run_id for r in g.expand() if r.spec.method.name == "imacsr" and r.spec.model.name == "deeplabv3plus"
           and r.spec.data.name == "cityscapes" and r.spec.points.count == 3 and r.spec.points.position == "input"
           and r.spec.points.spacing == 2} for g in (grids["num_points"], grids["position"], grids["spacing"],
                                                     grids["table_iv"])]
    assert len(m3[0]) == 3 and all(s == m3[0] for s in m3)


def test_position_grid_labels(grids):
    cells = Counter((c["series"], r.spec.points.count, r.spec.points.position)
                    for r in grids["position"].expand() for c in r.labels if "series" in c)
    assert cells == {(s, m, p): 3 for s, m in (("I", 1), ("II", 2), ("III", 3))
                     for p in ("input", "central", "output")}


def test_demo_grid_cells(grids):
    rows = grids["demo"].expand()
    assert {r.spec.model.name for r in rows} == {"deeplabv3plus"} and {r.seed for r in rows} == {0, 1}
    assert all(r.spec.data.name == "synthetic" and r.spec.train.epochs == 3 for r in rows)
    per_seed = Counter()
    for r in rows:
        for c in r.labels:
            per_seed[tuple(sorted(c.items()))] += 1
    assert per_seed[(("table", "iv"),)] == 4  # conventional + iMacSR, 2 seeds
    assert per_seed[(("figure", "3"),)] == 6  # M = 1..3
    assert per_seed[(("series", "II"), ("table", "vi"))] == 6  # input / central / output
    assert per_seed[(("figure", "4"),)] == 6  # spacing 1..3


def test_find_grid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.toml").write_text("")
    (tmp_path / "experiments" / "ablations").mkdir(parents=True)
    (tmp_path / "experiments" / "ablations" / "local.toml").write_text("")
    assert find_grid("mine.toml") == tmp_path / "mine.toml"
    assert find_grid("mine") == tmp_path / "mine.toml"
    assert find_grid("ablations/local.toml") == tmp_path / "experiments" / "ablations" / "local.toml"
    # not in the working directory: the checkout's experiments/ folder
    assert find_grid("ablations/num_points.toml") == REPO_EXPERIMENTS / "ablations" / "num_points.toml"
    assert find_grid("demo") == REPO_EXPERIMENTS / "demo.toml"
    assert find_grid(str(tmp_path / "mine.toml")) == tmp_path / "mine.toml"
    with pytest.raises(NotFound) as err:
        find_grid("ablations/nope.toml")
    msg = str(err.value)
    assert msg.startswith("grid file 'ablations/nope.toml' not found (looked in ")
    assert str(tmp_path / "ablations") in msg and str(REPO_EXPERIMENTS / "ablations") in msg
    assert GridSpec.find("ablations/num_points").name == "num_points"
