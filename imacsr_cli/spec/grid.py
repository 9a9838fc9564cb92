"""GridSpec: a TOML grid of runs — load, validate, expand. Pure: no I/O beyond reading the file.

A grid file has these tables (README "Grid files" documents them with an example):

- ``[grid]``      metadata: ``name`` (default: the file stem), ``title``, ``reproduces`` ("Table VI"),
                  ``description``, ``seeds`` (the repeat axis: every row once per seed, seed-major
                  order), ``labels`` (cell labels of every run).
- ``[base]``      a run spec (TOML layout of RunSpec) holding the defaults of every run.
- ``[sweep]``     dotted key → list of values; the cartesian product (first key outermost).
- ``[[zip]]``     each table: dotted keys → lists of equal length that vary together (one axis).
- ``[[block]]``   a sub-grid with its own ``set`` (fixed overrides), ``sweep``, ``zip`` and ``labels``;
                  the grid is the union of its blocks (top-level sweep/zip form the first block).
- ``[[include]]`` one extra run each: dotted keys (or nested tables) over ``base``, plus ``labels``.
- ``[[exclude]]`` drop every row whose spec (as written, before resolution) or labels match all of the
                  table's keys; seeds may be matched with ``train.seed``.

Anywhere a dotted spec key may appear (sweep, zip, set, include, exclude), ``labels.<key>`` may too:
it sets that label of the row, so ``[[zip]]`` can tie a label to a value (``"labels.series" = ["I",
"II", "III"]`` next to ``"points.count" = [1, 2, 3]``). Label values are strings (numbers are
converted). A run's labels in a grid are a list of cells (dicts): a run that two rows of the grid
describe (same resolved spec, so the same run_id) is kept once and fills both cells.

Expansion resolves every row against the model and dataset registries (``resolve``) and hashes it
(``run_id``). A row whose model or dataset is not installed is kept with ``error`` set and no run_id
(``check()`` summarises them); any other invalid row (a points selection that does not fit the
model...) makes the whole grid a SpecError naming the file and the row.

Finding, reading and validating a grid file is gridfile.py; this module holds ``GridSpec`` and its
expansion into ``GridRow``s.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imacsr_cli.errors import SpecError
from imacsr_cli.spec.gridfile import Block, GridParsing
from imacsr_cli.spec.gridfile import experiments_dirs, find_grid  # noqa: F401  (public here, as before)
from imacsr_cli.spec.runspec import RunSpec, attribute, check_value, get_dotted


SAME_RUN = "is the same run as"  # in the note about two rows that are one run (run-grid counts them)


# ---- the grid and its rows ----------------------------------------------------------------------


@dataclass(frozen=True)
class GridRow:
    """One run of an expanded grid.

    ``run_id`` is the hash of the resolved spec (None when ``error`` is set); ``spec`` the resolved
    RunSpec (unresolved when ``error`` is set); ``labels`` the cells it fills (list of dicts);
    ``overrides`` the dotted keys this row sets over ``base`` (seed included); ``where`` says which
    part of the file made it (``sources`` lists every part when rows were merged); ``missing`` the
    (kind, name) pairs that are not installed, e.g. ``[("model", "topformer")]``.
    """

    index: int
    run_id: str | None
    spec: RunSpec
    labels: list[dict[str, str]]
    overrides: dict[str, Any]
    where: str
    sources: list[str] = field(default_factory=list)
    error: str | None = None
    missing: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return self.spec.train.seed

    def describe(self) -> str:
        """'points.count=2, points.position=input, seed=1' (the row's own keys)."""
        return _describe(self.overrides)


@dataclass
class GridSpec(GridParsing):
    """A parsed and validated grid file. ``expand()`` gives its runs; ``check()`` what cannot run.
    Loading and validation (``find``, ``load``, ``from_text``, ``from_dict``) are in gridfile.py."""

    name: str
    title: str = ""
    reproduces: str = ""
    description: str = ""
    seeds: tuple[int, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    excludes: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    toml_text: str = ""
    source: str = "grid"
    slurm: dict[str, Any] = field(default_factory=dict)  # the [slurm] table: resources, not identity
    warnings: list[str] = field(default_factory=list)
    _rows: list[GridRow] | None = field(default=None, repr=False)

    # ---- expansion --------------------------------------------------------------------------------
    def size(self) -> int:
        """How many rows ``expand`` would make before exclusions and shared runs, computed from the
        axes' lengths alone (a sweep of 10^6 combinations is refused before it is built)."""
        rows = sum(math.prod(len(axis) for axis in block.axes) for block in self.blocks)
        return rows * max(1, len(self.seeds))

    def check_size(self, max_runs: int) -> None:
        """SpecError when the grid has more than ``max_runs`` rows (run-grid's --max-runs)."""
        n = self.size()
        if n > max_runs:
            raise SpecError(f"{self.source}: the grid makes {n:,} runs, more than --max-runs {max_runs:,}; "
                            f"shrink a sweep, or raise --max-runs if you mean it")

    def set_base(self, items: list[str]) -> None:
        """run-grid ``--set KEY=VALUE``: overrides of ``[base]``, before expansion (a sweep or block that
        sets the same key still wins over it, as over [base]). SpecError names the ``--set`` at fault."""
        from imacsr_cli.spec.overrides import apply_overrides, parse_override

        for item in items:
            if parse_override(item)[0] == "train.seed" and self.seeds:
                raise SpecError(f"--set {item}: [grid] seeds is the seed axis of {self.source}; "
                                f"the grid sets train.seed itself")
        self.base = apply_overrides(self.base, items)
        RunSpec.from_dict(self.base, source=f"{self.source} [base] with --set")
        self._rows = None

    def raw_rows(self) -> list[tuple[dict[str, Any], dict[str, str], str]]:
        """The rows before seeds, exclusion and resolution: (dotted overrides, labels, where)."""
        rows = []
        for block in self.blocks:
            for combo in itertools.product(*block.axes) if block.axes else [()]:
                over = dict(block.set)
                labels = {**self.labels, **block.labels}
                for alt in combo:
                    for k, v in alt.items():
                        if k.startswith("labels."):
                            labels[k[7:]] = str(v)
                        else:
                            over[k] = v
                rows.append((over, labels, block.where))
        return rows

    def expand(self) -> list[GridRow]:
        """Every run of the grid, deduplicated by run_id, in a deterministic order (seed-major: all rows
        of the first seed, then of the next...). Cached. SpecError for a row that cannot be resolved for
        a reason other than a model or dataset that is not installed (those rows carry ``error``)."""
        if self._rows is not None:
            return self._rows
        from imacsr_cli.spec.resolve import resolve

        models, datasets = _installed()
        seeds: tuple[int | None, ...] = self.seeds or (None,)
        rows: list[GridRow] = []
        by_key: dict[str, int] = {}
        # Each row is validated once (one RunSpec) and resolved once; each (row, seed) hashed once.
        resolved_cache: dict[str, RunSpec] = {}  # by the row's keys without the seed
        excludes = self._compiled_excludes()
        base = RunSpec.from_dict(self.base, source=f"{self.source} [base]")
        used_excludes: set[int] = set()
        self.warnings = []
        raw = self.raw_rows()
        # A row's spec is built once and only its seed set per seed: resolve() never reads the seed,
        # and at 1,100 seeds per row building and resolving every (row, seed) was most of a plan.
        row_specs: list[RunSpec] = [self._row_spec(base, over) for over, _, _ in raw]
        for seed in seeds:
            checked = None if seed is None else check_value("train.seed", seed, self.source)
            for (over, labels, where), row_spec in zip(raw, row_specs):
                seedless = over
                over = dict(over)
                if seed is not None:
                    over["train.seed"] = seed
                spec = row_spec if checked is None else _with_seed(row_spec, checked)
                hit = _excluded(excludes, spec, labels)
                if hit is not None:
                    used_excludes.add(hit)
                    continue
                missing = [(kind, name) for kind, name, known in (("model", spec.model.name, models),
                                                                  ("dataset", spec.data.name, datasets))
                           if name not in known]
                if missing:
                    error = "; ".join(f"{k} {n!r} is not installed" for k, n in missing)
                    key = "unresolved:" + spec.canonical_json()
                    run_id = None
                    final = spec
                else:
                    error = None
                    ck = repr(seedless)  # the row's own keys over the one base: the same keys, the same spec
                    if ck not in resolved_cache:
                        try:
                            r = resolve(row_spec)
                        except SpecError as exc:
                            raise SpecError(f"{self.source} {where} ({_describe(over)}): {exc}") from None
                        resolved_cache[ck] = r
                    final = resolved_cache[ck] if checked is None else _with_seed(resolved_cache[ck], checked)
                    run_id = final.run_id
                    key = run_id
                cell = dict(labels)
                if key in by_key:
                    first = rows[by_key[key]]
                    added = bool(cell) and cell not in first.labels
                    if added:
                        first.labels.append(cell)
                    if where not in first.sources:
                        first.sources.append(where)
                    self.warnings.append(
                        f"{self.source}: {where} ({_describe(over)}) {SAME_RUN} {first.where} "
                        f"({first.describe()}); kept once"
                        + ("; its labels were added to that run as another cell" if added else "")
                    )
                    continue
                by_key[key] = len(rows)
                rows.append(GridRow(index=len(rows), run_id=run_id, spec=final, labels=[cell] if cell else [],
                                    overrides=over, where=where, sources=[where], error=error, missing=missing))
        for i, ex in enumerate(self.excludes):
            if i not in used_excludes:
                self.warnings.append(f"{self.source}: [[exclude]] #{i + 1} ({_describe(ex)}) matches no run")
        self._rows = rows
        return rows

    def _row_spec(self, base: RunSpec, over: dict[str, Any]) -> RunSpec:
        """The row's spec as written: ``base`` with the row's dotted keys. Every value was validated
        for its key when the file was loaded, and the base once, so the row is built, not re-parsed."""
        sections: dict[str, dict[str, Any]] = {}
        for key, value in over.items():
            section, _, name = key.partition(".")
            sections.setdefault(section, {})[attribute(type(getattr(base, section)), name)] = \
                check_value(key, value, self.source)
        return dataclasses.replace(base, **{section: dataclasses.replace(getattr(base, section), **changes)
                                            for section, changes in sections.items()})

    def _compiled_excludes(self) -> list[list[tuple[str, Any]]]:
        """Each [[exclude]] as (dotted key, wanted value) pairs, the spec values coerced once to their
        field's type (so 1 matches 1.0), labels as strings."""
        out = []
        for ex in self.excludes:
            pairs = []
            for key, value in ex.items():
                if key.startswith("labels."):
                    pairs.append((key, str(value)))
                else:
                    pairs.append((key, _plain(check_value(key, value, self.source))))
            out.append(pairs)
        return out

    def valid_rows(self) -> list[GridRow]:
        """The rows that can run (no ``error``)."""
        return [r for r in self.expand() if r.error is None]

    def check(self) -> list[str]:
        """What keeps runs of this grid from running, one line per cause, e.g. "18 runs need model
        'topformer', which is not installed (installed: deeplabv3plus)". Empty when every row is valid."""
        rows = self.expand()
        counts: Counter[tuple[str, str]] = Counter(m for r in rows for m in r.missing)
        if not counts:
            return []
        models, datasets = _installed()
        out = []
        for (kind, name), n in sorted(counts.items()):
            known = models if kind == "model" else datasets
            out.append(f"{n} run{'s' if n != 1 else ''} need{'s' if n == 1 else ''} {kind} {name!r}, which is not "
                       f"installed (installed: {', '.join(sorted(known)) or 'none'})")
        return out

    def cells(self) -> dict[str, list[str]]:
        """Label key → the distinct values it takes in this grid (for reports and `imacsr plan`)."""
        out: dict[str, list[str]] = {}
        for row in self.expand():
            for cell in row.labels:
                for k, v in cell.items():
                    if v not in out.setdefault(k, []):
                        out[k].append(v)
        return out


# ---- helpers ------------------------------------------------------------------------------------


def _with_seed(spec: RunSpec, seed: int) -> RunSpec:
    """``spec`` with ``train.seed`` = seed (already checked against its range)."""
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, seed=seed))


def _excluded(excludes: list[list[tuple[str, Any]]], spec: RunSpec, labels: dict[str, str]) -> int | None:
    """The index of the first [[exclude]] that matches the row (its spec as written and its labels)."""
    for i, pairs in enumerate(excludes):
        for key, want in pairs:
            if key.startswith("labels."):
                if labels.get(key[7:]) != want:
                    break
            else:
                if _plain(get_dotted(spec, key)) != want:
                    break
        else:
            return i
    return None


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _installed() -> tuple[set[str], set[str]]:
    from imacsr_cli.data import registry as data_registry
    from imacsr_cli.models import registry as model_registry

    return set(model_registry.names()), set(data_registry.names())


def _describe(over: dict[str, Any]) -> str:
    parts = []
    for key, value in over.items():
        name = "seed" if key == "train.seed" else key
        parts.append(f"{name}={json.dumps(value) if not isinstance(value, str) else value}")
    return ", ".join(parts) or "base"
