"""Point selection: every position and spacing on a model's candidate list."""

import pytest

from imacsr_cli.errors import SpecError
from imacsr_cli.spec import RunSpec, resolve
from imacsr_cli.spec.points import select_indices, select_names

# n = 11 candidates (DeepLabv3+: stem, layer1.0 … layer4.1, aspp, decoder).
TABLE = [
    # count, position, spacing, indices
    (1, "input", 1, [0]),
    (1, "central", 1, [5]),
    (1, "output", 1, [10]),
    (2, "input", 1, [0, 1]),
    (2, "central", 1, [4, 5]),
    (2, "output", 1, [9, 10]),
    (3, "input", 2, [0, 2, 4]),
    (3, "central", 2, [3, 5, 7]),
    (3, "output", 2, [6, 8, 10]),
    (3, "input", 3, [0, 3, 6]),
    (3, "central", 3, [2, 5, 8]),
    (3, "output", 3, [4, 7, 10]),
    (5, "input", 2, [0, 2, 4, 6, 8]),
    (5, "central", 2, [1, 3, 5, 7, 9]),
    (4, "output", 3, [1, 4, 7, 10]),
    (2, "central", 2, [4, 6]),  # span 3 of 11: start (11 - 3) // 2 = 4
]


@pytest.mark.parametrize("count,position,spacing,expected", TABLE)
def test_selection_table(count, position, spacing, expected):
    assert select_indices(11, count, position, spacing) == expected


def test_selection_that_does_not_fit_names_model_and_limit():
    with pytest.raises(SpecError) as err:
        select_indices(9, 5, "input", 3, "deeplabv3plus (smp)")
    assert str(err.value) == (
        "key 'points': 5 points at spacing 3 span 13 positions but deeplabv3plus (smp) has 9 candidate "
        "points; at spacing 3 at most 3 fit"
    )


def test_explicit_names_keep_model_order_and_reject_unknown():
    assert select_names(["a", "b", "c"], ["c", "a"]) == ["a", "c"]
    with pytest.raises(SpecError, match="has no point 'x'"):
        select_names(["a", "b"], ["x"], "m")


def test_resolve_fills_names_and_normalises_conventional():
    spec = resolve(RunSpec.from_dict({"points": {"count": 2, "position": "output", "spacing": 1}}))
    assert spec.points.names == ["aspp", "decoder"]
    a = resolve(RunSpec.from_dict({"method": {"name": "conventional", "alpha": 1.0}, "points": {"count": 5}}))
    b = resolve(RunSpec.from_dict({"method": {"name": "conventional"}}))
    assert a.run_id == b.run_id and a.points.names == []


def test_per_point_weights_must_match_count():
    with pytest.raises(SpecError) as err:
        resolve(RunSpec.from_dict({"method": {"alpha": [0.1, 0.2]}, "points": {"count": 3}}))
    assert str(err.value) == "key 'method.alpha': expected a number or 3 numbers (one per point), got 2"
