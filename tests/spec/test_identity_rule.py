"""The identity rule (docs/contracts.md, "Run identity"): a key added later enters the hash only when
it differs from its legacy value, a default never changes silently, and two specs that train the same
thing hash the same. The golden ids (golden_ids.json) are the fixed points every check here keeps."""
# The test-only keys are named later_*: real keys added since (data.void_logit, method.ce_input) must
# not be shadowed by a test subclass with other allowed values.

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import golden
import pytest

from imacsr_cli.errors import SpecError
from imacsr_cli.spec.resolve import resolve
from imacsr_cli.spec.runspec import DataSpec, MethodSpec, RunSpec, TrainSpec, _opt, _section

ENTRIES = golden.load()["entries"]


# ---- a later release: new keys in three sections and a new section, each at its legacy value ---------


@dataclass(frozen=True)
class DataSpecLater(DataSpec):
    later_flag: bool = _opt(False, legacy=False, since="9.9", doc="test-only")


@dataclass(frozen=True)
class MethodSpecLater(MethodSpec):
    later_mode: Literal["logits", "probs"] = _opt("logits", legacy="logits", since="9.9", doc="test-only")
    warmup: list[float] = _opt([], legacy=[], since="9.9", doc="test-only")


@dataclass(frozen=True)
class TrainSpecLater(TrainSpec):
    compile: bool = _opt(False, legacy=False, since="9.9", doc="test-only")
    clip: float = _opt(0.0, legacy=0.0, since="9.9", doc="test-only")


@dataclass(frozen=True)
class ExtraSpec:
    tta: int = _opt(1, legacy=1, since="9.9", doc="test-only")


@dataclass(frozen=True)
class RunSpecLater(RunSpec):
    data: DataSpecLater = _section(DataSpecLater)
    method: MethodSpecLater = _section(MethodSpecLater)
    train: TrainSpecLater = _section(TrainSpecLater)
    extra: ExtraSpec = _section(ExtraSpec, since="9.9")


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["source"] for e in ENTRIES])
def test_keys_added_at_their_legacy_value_keep_every_golden_id(entry):
    for form in ("spec", "resolved"):
        later = resolve(RunSpecLater.from_dict(entry[form]))
        assert later.canonical_json() == entry["canonical"]
        assert later.run_id == entry["run_id"]
        # spec.json still holds every key, the new ones included.
        assert later.to_dict()["train"]["compile"] is False
        assert later.to_dict()["extra"] == {"tta": 1}


@pytest.mark.parametrize("key, value", [
    ("data.later_flag", True), ("method.later_mode", "probs"), ("method.warmup", [0.5]),
    ("train.compile", True), ("train.clip", 1.0), ("extra.tta", 2),
])
def test_a_new_key_at_another_value_is_another_run(key, value):
    section, name = key.split(".")
    base = RunSpecLater.from_dict({})
    changed = RunSpecLater.from_dict({section: {name: value}})
    assert resolve(base).run_id == golden_id("defaults")
    assert resolve(changed).run_id != resolve(base).run_id
    assert f'"{name}"' in resolve(changed).canonical_json()
    assert f'"{name}"' not in resolve(base).canonical_json()


def test_a_conventional_run_keeps_a_new_method_key():
    # The baseline normalisation must not reset what a later key says (e.g. what the CE reads).
    spec = resolve(RunSpecLater.from_dict({"method": {"name": "conventional", "later_mode": "probs"}}))
    assert spec.method.later_mode == "probs"
    assert spec.run_id != golden_id("conventional")


def test_legacy_false_is_not_zero():
    # True == 1 and False == 0 in Python; as spec values they differ. An integer written for a float
    # key is that number, so `clip = 0` is the legacy 0.0.
    from imacsr_cli.spec.runspec import _same

    assert _same(0.0, 0) and _same((1, 2), [1, 2]) and not _same(False, 0) and not _same(True, 1)
    assert resolve(RunSpecLater.from_dict({"train": {"clip": 0}})).run_id == golden_id("defaults")


@pytest.mark.parametrize("kwargs, message", [
    ({"default": True, "legacy": False, "since": "9.9"}, "must be the legacy value"),
    ({"default": False, "legacy": False}, "needs since="),
    ({"default": False, "legacy": False, "since": "9.9", "identity": False}, "only matters for keys in the hash"),
])
def test_a_default_that_is_not_the_legacy_value_is_refused(kwargs, message):
    default = kwargs.pop("default")
    with pytest.raises(ValueError, match=message):
        _opt(default, **kwargs)


# ---- equal runs hash equal --------------------------------------------------------------------------


def golden_id(name: str) -> str:
    return next(e["run_id"] for e in ENTRIES if e["source"] == f"hand-written: {name}")


NAMES = ["layer1.0", "layer2.1", "layer4.0"]  # indices 1, 4, 7 of 11: no position selects them


@pytest.mark.parametrize("position, spacing", [("input", 2), ("central", 5), ("output", 1), ("input", 1),
                                               ("central", 3), ("output", 3)])
def test_explicit_names_ignore_position_and_spacing(position, spacing):
    spec = resolve(RunSpec.from_dict({"points": {"names": NAMES, "position": position, "spacing": spacing}}))
    assert spec.run_id == golden_id("explicit points.names")
    assert (spec.points.position, spec.points.spacing) == ("input", 2)


@pytest.mark.parametrize("position, spacing", [("input", 2), ("input", 1), ("output", 4), ("output", 1)])
def test_one_explicit_name_ignores_position_and_spacing(position, spacing):
    # layer3.0 is index 5 of 11: `central` selects it, so ("central", s) is the count form's
    # spelling and keeps its own (pinned) id; no other position selects it.
    spec = resolve(RunSpec.from_dict({"points": {"names": ["layer3.0"], "position": position, "spacing": spacing}}))
    assert spec.run_id == golden_id("explicit points.names, one point")


def test_names_that_their_position_and_spacing_describe_are_the_count_form_run():
    # What a resolved spec.json looks like: names plus the selection that chose them.
    by_count = resolve(RunSpec.from_dict({"points": {"count": 3, "position": "output", "spacing": 1}}))
    by_names = resolve(RunSpec.from_dict({"points": {"names": by_count.points.names, "position": "output",
                                                     "spacing": 1}}))
    assert by_names.run_id == by_count.run_id


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["source"] for e in ENTRIES])
def test_resolving_is_idempotent(entry):
    once = resolve(RunSpec.from_dict(entry["spec"]))
    assert resolve(once) == once


def test_a_names_selection_that_does_not_fit_is_still_refused():
    with pytest.raises(SpecError, match="has no point 'layer9'"):
        resolve(RunSpec.from_dict({"points": {"names": ["layer9"], "position": "central"}}))


# ---- the identity dict of a stored spec (what reports compare) --------------------------------------


@pytest.mark.parametrize("entry", ENTRIES[::7], ids=[e["source"] for e in ENTRIES[::7]])
def test_identity_dict_is_the_identity_part_of_the_spec(entry):
    from imacsr_cli.spec.runspec import identity_dict

    for raw in (entry["spec"], entry["resolved"]):
        assert identity_dict(raw) == RunSpec.from_dict(raw).to_dict(identity_only=True)
        assert identity_dict(raw) == RunSpecLater.from_dict(raw).to_dict(identity_only=True)
    later = {**entry["resolved"], "train": {**entry["resolved"]["train"], "compile": True}}
    from imacsr_cli.spec import runspec

    assert runspec._identity_dict(RunSpecLater, later, "s", "")["train"]["compile"] is True


@pytest.mark.parametrize("raw", [
    {"points": {"count": "two"}}, {"points": {"cnt": 2}}, {"model": 3}, {"train": {"seed": True}},
    {"data": {"train_size": [1, 2, 3]}}, {"extra": {}},
])
def test_identity_dict_refuses_what_from_dict_refuses(raw):
    from imacsr_cli.spec.runspec import identity_dict

    with pytest.raises(SpecError) as built:
        RunSpec.from_dict(raw, source="s")
    with pytest.raises(SpecError) as fast:
        identity_dict(raw, source="s")
    assert str(fast.value) == str(built.value)
