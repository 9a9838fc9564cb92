"""Reading a grid file: finding it, parsing its TOML and validating every table into blocks of
dotted overrides. This is the first half of ``GridSpec`` (grid.py documents the file format and
expands the blocks into runs). SpecError messages name the file, the table, the key and what was
expected.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imacsr_cli.errors import NotFound, SpecError
from imacsr_cli.spec import ranges
from imacsr_cli.spec.runspec import RunSpec, check_value, field_docs, parse_toml, read_toml_text, set_dotted

if TYPE_CHECKING:  # pragma: no cover
    from imacsr_cli.spec.grid import GridSpec

TOP_KEYS = ("grid", "base", "sweep", "zip", "block", "include", "exclude", "slurm")
GRID_KEYS = ("name", "title", "reproduces", "description", "seeds", "labels")
BLOCK_KEYS = ("name", "labels", "set", "sweep", "zip")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---- finding a grid file ------------------------------------------------------------------------


def experiments_dirs() -> list[Path]:
    """Where grid files are looked for after the working directory: ``./experiments`` and the
    ``experiments/`` folder of the checkout this package lives in (duplicates removed)."""
    import imacsr_cli

    dirs = [Path.cwd() / "experiments", Path(imacsr_cli.__file__).resolve().parent.parent / "experiments"]
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def find_grid(path: str | Path) -> Path:
    """Resolve a grid path: as given (relative to the working directory), then under each of
    ``experiments_dirs()``; a name without a suffix also tries ``.toml``. NotFound lists where it looked."""
    p = Path(path).expanduser()
    names = [p] if p.suffix else [p, p.with_name(p.name + ".toml")]
    tried: list[Path] = []
    folders: list[Path] = []
    bases = [Path.cwd()] if p.is_absolute() else [Path.cwd(), *experiments_dirs()]
    for base in bases:
        for name in names:
            candidate = name if name.is_absolute() else base / name
            if candidate in tried:
                continue
            tried.append(candidate)
            if candidate.is_file():
                return candidate
            if candidate.is_dir() and not folders:
                folders.append(candidate)
    if folders:
        inside = sorted(folders[0].glob("*.toml"))
        hint = f", e.g. {path}/{inside[0].name}" if inside else ""
        raise SpecError(f"{folders[0]}: is a directory, expected a grid file (.toml){hint}")
    where = ", ".join(dict.fromkeys(str(t.parent) for t in tried))
    raise NotFound(f"grid file {str(path)!r} not found (looked in {where})")


# ---- the parsed parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One part of a grid that expands into rows: the top-level sweep/zip, a [[block]] or an [[include]]."""

    where: str  # "[sweep]" / "[[block]] #2 (fig3)" / "[[include]] #1"
    set: dict[str, Any]
    axes: list[list[dict[str, Any]]]  # each axis: a list of alternatives (dotted → value)
    labels: dict[str, str]


class GridParsing:
    """The loading and validation half of ``GridSpec`` (a mixin: the fields are GridSpec's)."""

    source: str
    seeds: tuple[int, ...]
    base: dict[str, Any]
    blocks: list[Block]
    excludes: list[dict[str, Any]]

    # ---- loading ----------------------------------------------------------------------------------
    @classmethod
    def find(cls, path: str | Path) -> GridSpec:
        """``load(find_grid(path))``: resolve against the working directory, then experiments/."""
        return cls.load(find_grid(path))

    @classmethod
    def load(cls, path: str | Path) -> GridSpec:
        """Read and validate a grid file; SpecError (one line: file, key, what was expected) if bad."""
        p = Path(path)
        text, data = read_toml_text(p)  # one read: parsed here, the text kept in the database
        return cls.from_dict(data, source=str(path), default_name=p.stem, path=p, toml_text=text)

    @classmethod
    def from_text(cls, text: str, source: str = "grid.toml", default_name: str = "grid") -> GridSpec:
        """Parse a grid from TOML text (tests, stdin)."""
        data = parse_toml(text, source)
        return cls.from_dict(data, source=source, default_name=default_name, toml_text=text)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "grid", default_name: str = "grid",
                  path: Path | None = None, toml_text: str = "") -> GridSpec:
        """Validate a parsed grid (the TOML layout described in grid.py)."""
        _check_keys(data, TOP_KEYS, source, "", "table")
        meta = _table(data.get("grid", {}), source, "[grid]")
        _check_keys(meta, GRID_KEYS, source, "[grid]", "key")
        name = _string(meta, "name", source, "[grid]", default_name)
        if not _NAME_RE.match(name):
            if "name" not in meta:  # the name comes from the file name: say so
                raise SpecError(f"{source}: the file name gives the grid name {name!r}, which is not one; "
                                f"expected letters, digits, '_', '-' or '.': rename the file or set [grid] name")
            raise SpecError(f"{source} [grid]: key 'name': expected letters, digits, '_', '-' or '.', got {name!r}")
        seeds = meta.get("seeds", [])
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                 for s in seeds):
            if "seeds" in meta:
                raise SpecError(f"{source} [grid]: key 'seeds': expected a non-empty list of integers, "
                                f"got {_show(seeds)}")
        if len(set(seeds)) != len(seeds):
            raise SpecError(f"{source} [grid]: key 'seeds': a seed is listed twice: {seeds}")
        for s in seeds:  # each one is a train.seed: the same range
            wrong = ranges.problem("train.seed", s)
            if wrong:
                raise SpecError(f"{source} [grid]: key 'seeds': {wrong}")
        if not any(k in data for k in ("base", "sweep", "zip", "block", "include")):
            raise SpecError(f"{source}: no runs: expected a [base], [sweep], [[zip]], [[block]] or [[include]] "
                            f"table (an empty grid would train one default run)")
        grid = cls(
            name=name,
            title=_string(meta, "title", source, "[grid]", ""),
            reproduces=_string(meta, "reproduces", source, "[grid]", ""),
            description=_string(meta, "description", source, "[grid]", ""),
            seeds=tuple(seeds),
            labels=_labels(meta.get("labels", {}), source, "[grid]"),
            path=path,
            toml_text=toml_text,
            source=source,
            # Where the runs go on Slurm (launch/slurm.py validates it); never part of a run's spec or id.
            slurm=_table(data.get("slurm", {}), source, "[slurm]"),
        )

        base = _table(data.get("base", {}), source, "[base]")
        RunSpec.from_dict(base, source=f"{source} [base]")
        grid.base = base
        if seeds and "seed" in base.get("train", {}):
            raise SpecError(f"{source} [base]: key 'train.seed': [grid] seeds is the seed axis; set one of them")

        top = {k: data[k] for k in ("sweep", "zip") if k in data}
        blocks_raw = data.get("block", [])
        if not isinstance(blocks_raw, list):
            raise SpecError(f"{source}: key 'block': expected [[block]] tables, got {_show(blocks_raw)}")
        includes = data.get("include", [])
        if not isinstance(includes, list):
            raise SpecError(f"{source}: key 'include': expected [[include]] tables, got {_show(includes)}")
        if top or (not blocks_raw and not includes):
            grid.blocks.append(grid._block(top, "", top_level=True))
        for i, raw in enumerate(blocks_raw, 1):
            raw = _table(raw, source, f"[[block]] #{i}")
            label = f"[[block]] #{i}" + (f" ({raw['name']})" if isinstance(raw.get("name"), str) else "")
            grid.blocks.append(grid._block(raw, label))
        for i, raw in enumerate(includes, 1):
            where = f"[[include]] #{i}"
            flat = grid._row_table(_table(raw, source, where), where)
            labels = {k[7:]: str(v) for k, v in flat.items() if k.startswith("labels.")}
            grid.blocks.append(Block(where, {k: v for k, v in flat.items() if not k.startswith("labels.")}, [], labels))

        excludes = data.get("exclude", [])
        if not isinstance(excludes, list):
            raise SpecError(f"{source}: key 'exclude': expected [[exclude]] tables, got {_show(excludes)}")
        for i, raw in enumerate(excludes, 1):
            where = f"[[exclude]] #{i}"
            flat = grid._row_table(_table(raw, source, where), where, allow_seed=True)
            if not flat:
                raise SpecError(f"{source} {where}: empty table; expected keys to match, e.g. \"points.count\" = 5")
            grid.excludes.append(flat)
        return grid

    def _block(self, raw: dict[str, Any], where: str, top_level: bool = False) -> Block:
        src = self.source
        if not top_level:
            _check_keys(raw, BLOCK_KEYS, src, where, "key")
        sweep_where = "[sweep]" if top_level else f"{where} sweep"
        zip_where = "[[zip]]" if top_level else f"{where} zip"
        fixed = self._row_table(_table(raw.get("set", {}), src, f"{where} set"), f"{where} set") if not top_level else {}
        labels = {} if top_level else _labels(raw.get("labels", {}), src, where)
        axes: list[list[dict[str, Any]]] = []
        owner: dict[str, str] = {k: f"{where} set" for k in fixed}

        def claim(key: str, part: str) -> None:
            if key in owner:
                raise SpecError(f"{src} {part}: key '{key}' is also set in {owner[key]}; give it in one place")
            owner[key] = part

        sweep = _table(raw.get("sweep", {}), src, sweep_where)
        for key, values in self._flat_lists(sweep, sweep_where).items():
            claim(key, sweep_where)
            axes.append([{key: v} for v in values])
        zips = raw.get("zip", [])
        if isinstance(zips, dict):
            zips = [zips]
        if not isinstance(zips, list):
            raise SpecError(f"{src} {zip_where}: expected tables of lists, got {_show(zips)}")
        for i, z in enumerate(zips, 1):
            part = f"{zip_where} #{i}"
            lists = self._flat_lists(_table(z, src, part), part)
            if not lists:
                raise SpecError(f"{src} {part}: empty table; expected lists of equal length")
            lengths = {k: len(v) for k, v in lists.items()}
            if len(set(lengths.values())) > 1:
                (k1, n1), (k2, n2) = next(((a, b) for a, b in itertools.combinations(lengths.items(), 2)
                                           if a[1] != b[1]))
                raise SpecError(
                    f"{src} {part}: lists of different lengths: '{k1}' has {n1} values, '{k2}' has {n2}; "
                    f"zipped lists must be of equal length"
                )
            for key in lists:
                claim(key, part)
            n = next(iter(lengths.values()))
            axes.append([{k: v[j] for k, v in lists.items()} for j in range(n)])
        if top_level:
            where = "[sweep]" if "sweep" in raw else "[[zip]]" if "zip" in raw else "[base]"
        return Block(where, {k: v for k, v in fixed.items() if not k.startswith("labels.")}, axes,
                      {**labels, **{k[7:]: str(v) for k, v in fixed.items() if k.startswith("labels.")}})

    def _flatten(self, table: dict[str, Any], where: str) -> dict[str, Any]:
        try:
            return flatten(table)
        except SpecError as exc:
            raise SpecError(f"{self.source} {where}: {exc}") from None

    def _flat_lists(self, table: dict[str, Any], where: str) -> dict[str, list[Any]]:
        """A sweep/zip table: dotted key → non-empty list of values, each validated for its key."""
        out: dict[str, list[Any]] = {}
        for key, values in self._flatten(table, where).items():
            self._check_key(key, where)
            if not isinstance(values, list):
                raise SpecError(f"{self.source} {where}: key '{key}': expected a list of values, got {_show(values)}")
            if not values:
                raise SpecError(f"{self.source} {where}: key '{key}': empty list; expected at least one value")
            for v in values:
                self._check_value(key, v, where)
            out[key] = values
        return out

    def _row_table(self, table: dict[str, Any], where: str, allow_seed: bool = False) -> dict[str, Any]:
        """An include/set/exclude table: dotted key → one value, each validated for its key."""
        out = self._flatten(table, where)
        for key, value in out.items():
            self._check_key(key, where, allow_seed=allow_seed)
            self._check_value(key, value, where)
        return out

    def _check_key(self, key: str, where: str, allow_seed: bool = False) -> None:
        if key.startswith("labels."):
            if len(key) == 7:
                raise SpecError(f"{self.source} {where}: key 'labels.': expected labels.<name>")
            return
        if key == "train.seed" and self.seeds and not allow_seed:
            raise SpecError(f"{self.source} {where}: key 'train.seed': [grid] seeds is the seed axis; "
                            f"set one of them")

    def _check_value(self, key: str, value: Any, where: str) -> None:
        if key.startswith("labels."):
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise SpecError(f"{self.source} {where}: key '{key}': expected a string, got {_show(value)}")
            return
        if key not in _leaves():
            # RunSpec says it best: "unknown key 'points.cnt'; expected one of count, names, ..."
            tree: dict[str, Any] = {}
            try:
                set_dotted(tree, key, value)
            except SpecError as exc:
                raise SpecError(f"{self.source} {where}: {exc}") from None
            RunSpec.from_dict(tree, source=f"{self.source} {where}")
            raise SpecError(f"{self.source} {where}: unknown key '{key}'")
        check_value(key, value, f"{self.source} {where}")


# ---- helpers ------------------------------------------------------------------------------------

_LEAVES: frozenset[str] | None = None


def _leaves() -> frozenset[str]:
    global _LEAVES
    if _LEAVES is None:
        _LEAVES = frozenset(field_docs())
    return _LEAVES


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables and quoted dotted keys → {dotted key: value}. ``labels`` tables → labels.<k>."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in _leaves():
            inner = flatten(value, dotted + ".")
        else:
            inner = {dotted: value}
        for k, v in inner.items():
            # TOML keeps "points.count" (one quoted key) and points.count (a table) apart; here they
            # are one key, and which value would win is an accident of the file's order.
            if k in out:
                raise SpecError(f"key '{k}' is given twice (written quoted and dotted); give it once")
            out[k] = v
    return out


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        text = json.dumps(value)
        return f"a list {text}" if len(text) < 40 else "a list"
    return f"{type(value).__name__} {value!r}"


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], source: str, where: str, what: str) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        loc = f"{source} {where}" if where else source
        raise SpecError(f"{loc}: unknown {what} '{unknown[0]}'; expected one of {', '.join(allowed)}")


def _table(value: Any, source: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{source} {where}: expected a table, got {_show(value)}")
    return value


def _string(table: dict[str, Any], key: str, source: str, where: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise SpecError(f"{source} {where}: key '{key}': expected a string, got {_show(value)}")
    return value


def _labels(value: Any, source: str, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SpecError(f"{source} {where}: key 'labels': expected a table of strings, got {_show(value)}")
    out = {}
    for k, v in value.items():
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise SpecError(f"{source} {where}: key 'labels.{k}': expected a string, got {_show(v)}")
        out[k] = str(v)
    return out
