"""Golden run ids: a finished run is never trained again, including after an upgrade.

golden_ids.json pins specs (every run of every shipped grid and hand-written specs) to the run_id
they had when they were pinned. The rule these tests hold (docs/contracts.md, "Run identity"):

- a pinned spec keeps its run_id, written as a user wrote it and read back from its spec.json;
- the file may only grow: an entry is never changed or removed (checked against its git history);
- the keys that were in the hash when the file was made keep their defaults (a default never changes
  silently), and every key added since declares a ``legacy`` value, the value that reproduces the old
  behaviour; it enters the hash only when a spec sets another value.

A failure here means an upgrade would retrain finished runs: fix the code, never the file. To pin
new runs (a new shipped grid, a new spec form): ``PYTHONPATH=$PWD python tests/spec/golden.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from imacsr_cli.spec.grid import GridSpec
from imacsr_cli.spec.resolve import resolve
from imacsr_cli.spec.runspec import RunSpec

import golden

GOLDEN = golden.load()
ENTRIES = GOLDEN["entries"]
MIN_ENTRIES = 155  # the count when the file was first written; it may only grow


def _ids(entries):
    return [e["source"] for e in entries]


def test_the_golden_file_is_not_empty():
    assert len(ENTRIES) >= MIN_ENTRIES
    sources = " ".join(e["source"] for e in ENTRIES)
    for grid in ("table_iv.toml", "num_points.toml", "position.toml", "spacing.toml", "demo.toml"):
        assert grid in sources


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_a_pinned_spec_keeps_its_run_id(entry):
    # As written (a grid row, a TOML file) ...
    spec = resolve(RunSpec.from_dict(entry["spec"]))
    assert spec.canonical_json() == entry["canonical"]
    assert spec.run_id == entry["run_id"]
    # ... and read back from the spec.json of a run trained by the code that pinned it.
    again = resolve(RunSpec.from_dict(entry["resolved"]))
    assert again.run_id == entry["run_id"]
    # The file is consistent with itself: the id is the hash of the canonical JSON.
    assert hashlib.sha256(entry["canonical"].encode()).hexdigest()[:12] == entry["run_id"]


def test_every_run_of_every_shipped_grid_is_pinned():
    pinned = {e["run_id"] for e in ENTRIES}
    for path in golden.grid_files():
        raw = golden._read(path)
        if golden.is_run_spec(raw):
            ids = [resolve(RunSpec.from_dict(raw)).run_id]
        else:
            ids = [r.run_id for r in GridSpec.load(path).valid_rows()]
        missing = [i for i in ids if i not in pinned]
        assert not missing, (f"{path.name}: {len(missing)} runs are not pinned; "
                             f"run `PYTHONPATH=$PWD python tests/spec/golden.py`")


def test_the_keys_of_the_first_pin_keep_their_defaults():
    now = golden.identity_defaults()
    for key, default in GOLDEN["keys"].items():
        assert key in now, f"{key} left the hash: every run that set it would change id"
        assert now[key] == default, (f"the default of {key} changed from {default!r} to {now[key]!r}: "
                                     "that changes the id of every run that does not set it")


def test_every_key_added_since_declares_its_legacy_value():
    frozen = set(GOLDEN["keys"])
    for section in dataclasses.fields(RunSpec):
        for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            dotted = f"{section.name}.{f.metadata.get('key') or f.name}"
            if dotted in frozen or not f.metadata.get("identity", True):
                continue
            assert "legacy" in f.metadata, (
                f"{dotted} is a new key in the hash without a legacy value: declare "
                "_opt(<default>, legacy=<value that reproduces the old behaviour>, since=<version>)")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to read the file's history")
def test_the_golden_file_only_grows():
    here = Path(golden.__file__).resolve().parent
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True)
    if top.returncode != 0:
        pytest.skip("not a git checkout")
    rel = golden.GOLDEN.resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()
    log = subprocess.run(["git", "log", "--format=%H", "--", rel], cwd=here, capture_output=True, text=True,
                         check=True)
    now = {json.dumps(e["spec"], sort_keys=True): e["run_id"] for e in ENTRIES}
    for commit in log.stdout.split():
        old = json.loads(subprocess.run(["git", "show", f"{commit}:{rel}"], cwd=here, capture_output=True,
                                        text=True, check=True).stdout)
        assert old["keys"] == GOLDEN["keys"], f"the frozen keys changed since {commit[:8]}"
        for e in old["entries"]:
            key = json.dumps(e["spec"], sort_keys=True)
            assert now.get(key) == e["run_id"], f"{e['source']}: pinned in {commit[:8]}, changed or removed since"
