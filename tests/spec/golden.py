"""The golden run ids: specs pinned to the run_id they had when they were added.

A finished run is never trained again, including after an upgrade, so a spec's run_id may never
change. ``golden_ids.json`` pins specs (every run of every shipped grid, plus hand-written specs
covering each model family, dataset and spec form) to their ids; test_golden_ids.py checks that
today's code still gives every one of them. The file may only grow:

    PYTHONPATH=$PWD python tests/spec/golden.py          # add the runs that are not pinned yet

adds an entry for every shipped-grid run and hand-written spec that is not in the file yet, and
refuses (exit 1) when a pinned entry would get a different id: that is a broken upgrade, never a
reason to edit the file. Each entry holds the spec as written (``spec``), the resolved spec as
spec.json holds it (``resolved``), the canonical JSON that is hashed (``canonical``) and ``run_id``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden_ids.json")

# Hand-written specs: the forms a user writes that the shipped grids do not cover.
HAND_WRITTEN: dict[str, dict[str, Any]] = {
    "defaults": {},
    "conventional": {"method": {"name": "conventional"}},
    "conventional, alpha and lambda set (normalised away)": {
        "method": {"name": "conventional", "alpha": 0.7, "lambda": 0.5}},
    "explicit points.names": {"points": {"names": ["layer1.0", "layer2.1", "layer4.0"]}},
    "explicit points.names, one point": {"points": {"names": ["layer3.0"]}},
    # Pinned after the rule that explicit names ignore position/spacing (same ids as the two above).
    "explicit points.names, ignored position and spacing": {
        "points": {"names": ["layer1.0", "layer2.1", "layer4.0"], "position": "central", "spacing": 5}},
    "explicit points.names, one point, ignored position and spacing": {
        "points": {"names": ["layer3.0"], "position": "output", "spacing": 1}},
    "explicit points.names in a grid base with spacing 1": {
        "data": {"name": "cityscapes"}, "points": {"names": ["stem", "layer2.0"], "spacing": 1}},
    "per-point alpha and lambda lists": {
        "method": {"alpha": [0.1, 0.2, 0.3], "lambda": [0.01, 0.0, -0.01]}, "points": {"count": 3}},
    "one point (spacing normalised)": {"points": {"count": 1, "position": "output", "spacing": 3}},
    "central, spacing 1, fcn adapter, normalized NE": {
        "points": {"count": 4, "position": "central", "spacing": 1},
        "method": {"adapter": "fcn", "ne": "normalized"}},
    "NE on logits, poly schedule, bf16": {
        "method": {"ne": "logits"}, "optim": {"schedule": "poly", "lr": 1e-3}, "train": {"amp": "bf16"}},
    "deeplabv3plus paper variant": {"model": {"name": "deeplabv3plus", "variant": "paper"}},
    "deeplabv3plus with local weights": {"model": {"weights": "/weights/resnet18.pth"}},
    "topformer tiny": {"model": {"name": "topformer", "variant": "tiny"}, "points": {"count": 2}},
    "topformer base, output, spacing 1": {"model": {"name": "topformer", "variant": "base"},
                                       "points": {"count": 2, "position": "output", "spacing": 1}},
    "seaformer small": {"model": {"name": "seaformer", "variant": "small"}},
    "seaformer large, output": {"model": {"name": "seaformer", "variant": "large"},
                                "points": {"count": 2, "position": "output"}},
    "cityscapes": {"data": {"name": "cityscapes"}},
    "camvid, eval native": {"data": {"name": "camvid", "eval_native": True}},
    "camvid, given sizes and counts": {
        "data": {"name": "camvid", "train_size": [360, 480], "eval_size": [360, 480], "num_train": 10}},
    "synthiasf": {"data": {"name": "synthiasf"}},
    "synthetic, no flip, scale range": {
        "data": {"name": "synthetic", "hflip": False, "scale_range": [0.75, 1.25]}},
    "not in the hash: root, workers, pin_memory, channels_last, eval_every": {
        "data": {"root": "/data/x", "workers": 4, "pin_memory": True},
        "train": {"channels_last": True, "eval_every": 5}},
    "tiny (contracts.md)": {
        "model": {"name": "deeplabv3plus"},
        "data": {"name": "synthetic", "train_size": [32, 32], "eval_size": [32, 32], "num_train": 4,
                 "num_val": 2},
        "train": {"epochs": 2, "batch_size": 2},
        "points": {"count": 2, "position": "input", "spacing": 1}},
}


def grid_files() -> list[Path]:
    return sorted((ROOT / "experiments").rglob("*.toml"))


def _read(path: Path) -> dict[str, Any]:
    from imacsr_cli.spec.runspec import read_toml

    return read_toml(path)


def is_run_spec(raw: dict[str, Any]) -> bool:
    """A single-run spec file (experiments/runs/*.toml), not a grid: only RunSpec sections."""
    from imacsr_cli.spec.runspec import RunSpec

    return set(raw) <= {f.name for f in dataclasses.fields(RunSpec)}


def _entry(source: str, written: dict[str, Any]) -> dict[str, Any]:
    from imacsr_cli.spec.resolve import resolve
    from imacsr_cli.spec.runspec import RunSpec

    r = resolve(RunSpec.from_dict(written, source=source))
    return {"source": source, "spec": written, "resolved": r.to_dict(), "canonical": r.canonical_json(),
            "run_id": r.run_id}


def _written(grid: Any, row: Any) -> dict[str, Any]:
    import copy

    from imacsr_cli.spec.runspec import set_dotted

    tree = copy.deepcopy(grid.base)
    for key, value in row.overrides.items():
        set_dotted(tree, key, value)
    return tree


def candidates() -> list[dict[str, Any]]:
    """Today's entries for every shipped-grid run and hand-written spec."""
    from imacsr_cli.spec.grid import GridSpec

    out = []
    for path in grid_files():
        rel = path.relative_to(ROOT).as_posix()
        raw = _read(path)
        if is_run_spec(raw):
            out.append(_entry(rel, raw))  # a single-run spec file (experiments/runs/*.toml)
            continue
        grid = GridSpec.load(path)
        for row in grid.valid_rows():
            out.append(_entry(f"{rel} {row.where} ({row.describe()})", _written(grid, row)))
    for name, spec in HAND_WRITTEN.items():
        out.append(_entry(f"hand-written: {name}", spec))
    return out


def load() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def identity_defaults() -> dict[str, Any]:
    """Every dotted key that enters the hash today, with its default (JSON form)."""
    from imacsr_cli.spec.runspec import RunSpec

    d = RunSpec().to_dict(identity_only=True)
    return {f"{section}.{key}": value for section, keys in d.items() for key, value in keys.items()}


def main() -> int:
    golden = load()
    entries = golden.get("entries", [])
    # The keys (and defaults) that were in the hash when the file was first written: frozen. A key
    # added later must declare its legacy value (see docs/contracts.md, "Run identity").
    keys = golden.get("keys") or identity_defaults()
    # One entry per spec as written: two ways of writing one run are both pinned.
    seen = {json.dumps(e["spec"], sort_keys=True) for e in entries}
    added = 0
    for entry in candidates():
        key = json.dumps(entry["spec"], sort_keys=True)
        if key in seen:
            continue
        entries.append(entry)
        seen.add(key)
        added += 1
    # Growing only: a pinned spec whose id moved is a broken upgrade, never a file to edit.
    from imacsr_cli.spec.resolve import resolve
    from imacsr_cli.spec.runspec import RunSpec

    moved = [e for e in entries if resolve(RunSpec.from_dict(e["spec"])).run_id != e["run_id"]]
    if moved:
        print(f"{len(moved)} pinned specs changed id (first: {moved[0]['source']}); file left unchanged",
              file=sys.stderr)
        return 1
    doc = ("Pinned run ids: a spec here must keep its run_id forever. This file may only grow "
           "(tests/spec/golden.py adds entries; see docs/contracts.md, 'Run identity').")
    # One entry per line: an addition is a diff of added lines only.
    lines = ",\n".join("  " + json.dumps(e, separators=(",", ":")) for e in entries)
    GOLDEN.write_text(f'{{"about": {json.dumps(doc)},\n "keys": {json.dumps(keys)},\n'
                      f' "entries": [\n{lines}\n]}}\n')
    print(f"{added} entries added, {len(entries)} pinned")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
