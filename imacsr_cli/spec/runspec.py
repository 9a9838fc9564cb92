"""RunSpec: everything that defines one training run, and nothing else.

A RunSpec is built from a nested dict (a TOML file, a grid row, spec.json), validated field by field
against the dataclasses below: an unknown key or a wrong type is a SpecError naming the dotted key.
``run_id`` is a short hash of the canonical JSON of the *resolved* spec (see resolve.py), so the same
run written two ways in two grids is one run.

Fields marked ``identity=False`` (data root, loader workers, channels_last...) change how a run is
executed, not what it computes; they are kept in spec.json but left out of the hash.

Run identity survives upgrades (docs/contracts.md, "Run identity"; tests/spec/test_golden_ids.py):
a key added after the first release declares ``legacy=<value>``, the value that reproduces what the
code did before the key existed, and ``since=<version>``. The canonical JSON leaves such a key out
while it holds its legacy value, so every run that existed before keeps its run_id; a spec that sets
another value is a different run with a new id. Its default must be its legacy value (checked when
the field is declared): a default never changes silently. Example::

    compile: bool = _opt(False, legacy=False, since="0.2", doc="torch.compile the model")
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from imacsr_cli.errors import SpecError
from imacsr_cli.spec import ranges


# (before _opt: a field declared with legacy= calls it at import)
def _same(a: Any, b: Any) -> bool:
    """Equal as spec values: tuples equal lists, and bool is not a number (True == 1 in Python)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


_NO_LEGACY = object()


def _opt(default: Any, *, key: str | None = None, identity: bool = True, doc: str = "",
         legacy: Any = _NO_LEGACY, since: str = "") -> Any:
    """A dataclass field with its TOML key (when it differs from the attribute) and identity flag.

    ``legacy`` (with ``since``, the version that added the key): the value that reproduces the
    behaviour from before the key existed; the key enters the hash only when it holds another value.
    Every key added to the hash after the golden ids were pinned needs one (tests/spec/test_golden_ids.py).
    """
    meta: dict[str, Any] = {"key": key, "identity": identity, "doc": doc}
    if legacy is not _NO_LEGACY:
        if not identity:
            raise ValueError(f"spec key {key or doc!r}: legacy= only matters for keys in the hash (identity=True)")
        if not since:
            raise ValueError(f"spec key {key or doc!r}: legacy= needs since=<version that added the key>")
        if not _same(default, legacy):
            raise ValueError(f"spec key {key or doc!r}: the default {default!r} must be the legacy value "
                             f"{legacy!r}; a default may never change the id of an existing run")
        meta["legacy"] = legacy
        meta["since"] = since
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _section(cls: type, *, since: str = "") -> Any:
    """A section of RunSpec. A section added after the first release gives ``since``: it is left out
    of the hash while every key in it holds its legacy value (each of its keys needs ``legacy``)."""
    return field(default_factory=cls, metadata={"since": since} if since else {})


@dataclass(frozen=True)
class ModelSpec:
    name: str = _opt("deeplabv3plus", doc="registered model (imacsr models)")
    variant: str = _opt("", doc="model variant; '' = the model's default")
    weights: str = _opt("", doc="local path to ImageNet weights for the backbone; '' = random init")


@dataclass(frozen=True)
class DataSpec:
    name: str = _opt("synthetic", doc="dataset: synthetic, cityscapes, camvid, synthiasf")
    root: str = _opt("", identity=False, doc="dataset root; '' = $IMACSR_DATA/<name>")
    split: str = _opt("", doc="split protocol; '' = the dataset's default")
    classes: str = _opt("", doc="class set; '' = the dataset's default")
    train_size: tuple[int, int] = _opt((0, 0), doc="training crop (H, W); (0, 0) = dataset default")
    eval_size: tuple[int, int] = _opt((0, 0), doc="evaluation size (H, W); (0, 0) = dataset default")
    eval_native: bool = _opt(False, doc="evaluate at each image's native size (eval_size ignored)")
    scale_range: tuple[float, float] = _opt((0.0, 0.0), doc="random scale; (0, 0) = dataset default")
    hflip: bool = _opt(True, doc="random horizontal flip in training")
    num_train: int = _opt(0, doc="training images; 0 = all (synthetic: its default)")
    num_val: int = _opt(0, doc="evaluation images; 0 = all (synthetic: its default)")
    workers: int = _opt(-1, identity=False,
                        doc="DataLoader worker processes; -1 = the slot's share of the cores on CUDA, 0 on the CPU")
    pin_memory: bool = _opt(True, identity=False, doc="DataLoader pin_memory (CUDA only)")
    cache: str = _opt("", identity=False, doc="folder of decoded samples: each image/label pair decoded once, "
                      "then read from there (4 bytes a pixel on disk; the synthetic scenes decode nothing and ignore it); "
                      "'' = decode every read")
    resize: Literal["whole", "window"] = _opt(
        "whole", legacy="whole", since="0.2", doc="training scale+crop: whole = resize the whole image, then crop "
        "(as before 0.2); window = resize only the crop's window (Pillow box=; several times faster on large "
        "images, pixels differ from whole by interpolation rounding)")
    void_logit: bool = _opt(False, legacy=False, since="0.2", doc="author's code: an extra (K+1)th 'void' logit; "
                            "void pixels stay ignored by the loss, and a void prediction counts as a miss")


@dataclass(frozen=True)
class PointsSpec:
    names: list[str] = _opt([], doc="explicit point names; overrides count/position/spacing")
    count: int = _opt(3, doc="M, the number of intermediate points")
    position: Literal["input", "central", "output"] = _opt("input", doc="where the points sit")
    spacing: int = _opt(2, doc="distance between adjacent points, in base distances (blocks)")


@dataclass(frozen=True)
class MethodSpec:
    name: Literal["imacsr", "conventional"] = _opt("imacsr", doc="conventional = CE at the output only")
    alpha: float | list[float] = _opt(0.4, doc="MI weight α_m, scalar or one per point")
    lam: float | list[float] = _opt(0.01, key="lambda", doc="NE weight λ_m, scalar or one per point")
    adapter: Literal["conv1x1", "fcn"] = _opt("conv1x1", doc="dimension adapter q_m")
    ne: Literal["faithful", "normalized", "logits"] = _opt(
        "faithful", doc="NE on softmax over z_m channels (eq. 3), the same ÷ log C_m, or on adapter logits"
    )
    ce_input: Literal["logits", "softmax"] = _opt(
        "logits", legacy="logits", since="0.2", doc="what every cross-entropy (output and MI) is applied to; "
        "softmax = the author's code (CE of softmax outputs, a double softmax)"
    )


@dataclass(frozen=True)
class OptimSpec:
    name: Literal["adam"] = _opt("adam", doc="optimizer (Table III: Adam)")
    lr: float = _opt(3e-4, doc="learning rate (Table III)")
    betas: tuple[float, float] = _opt((0.9, 0.999), doc="Adam betas (Table III)")
    weight_decay: float = _opt(1e-4, doc="Adam weight decay (Table III)")
    schedule: Literal["constant", "poly"] = _opt("constant", doc="learning-rate schedule")


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = _opt(50, doc="training epochs")
    batch_size: int = _opt(8, doc="images per step (Table III: 8)")
    seed: int = _opt(0, doc="seed of initialisation, data order and augmentation")
    amp: Literal["off", "bf16", "fp16"] = _opt("off", doc="autocast dtype on CUDA; ignored on the CPU")
    channels_last: bool = _opt(False, identity=False, doc="channels_last memory format on CUDA")
    eval_every: int = _opt(1, identity=False, doc="evaluate every N epochs (and always at the end)")
    compile: bool = _opt(False, identity=False, doc="torch.compile the network (the taps' hooks are kept)")


@dataclass(frozen=True)
class RunSpec:
    model: ModelSpec = _section(ModelSpec)
    data: DataSpec = _section(DataSpec)
    method: MethodSpec = _section(MethodSpec)
    points: PointsSpec = _section(PointsSpec)
    optim: OptimSpec = _section(OptimSpec)
    train: TrainSpec = _section(TrainSpec)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> RunSpec:
        """Validate a nested dict (TOML layout). ``source`` prefixes every error message."""
        return _build(cls, data, source, prefix="")

    @classmethod
    def from_toml(cls, path: str | Path) -> RunSpec:
        return cls.from_dict(read_toml(path), source=str(path))

    @classmethod
    def from_json(cls, path: str | Path) -> RunSpec:
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SpecError(f"{path}: file not found") from None
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}: invalid JSON: {exc}") from None
        return cls.from_dict(raw, source=str(path))

    # ---- canonical form -----------------------------------------------------------------------
    def to_dict(self, identity_only: bool = False) -> dict[str, Any]:
        """Nested dict in TOML layout (keys as written in files)."""
        return _to_dict(self, identity_only)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(identity_only=True), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """Short hash of the canonical JSON. Meaningful on a resolved spec (see resolve.py)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]


# ---- TOML -------------------------------------------------------------------------------------


MAX_DEPTH = 16  # tables nested deeper than this are no spec or grid (a grid needs 4: block.set.points.count)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; every way it can be broken (syntax, encoding, nesting) becomes one line with
    the file and what was expected."""
    return read_toml_text(path)[1]


def read_toml_text(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The text of a TOML file and what it holds, from one read; every problem is one line."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise SpecError(f"{path}: permission denied") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"{path}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}; "
                        f"TOML files must be UTF-8") from None
    return text, parse_toml(text, str(path))


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """``tomllib.loads`` with its errors as one SpecError line naming ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: TOML syntax error: {exc}") from None
    except RecursionError:  # tomllib recurses once per nested inline table or array
        raise SpecError(f"{source}: tables or lists nested too deeply (at most {MAX_DEPTH} levels)") from None
    if _depth(data) > MAX_DEPTH:
        raise SpecError(f"{source}: tables or lists nested too deeply (at most {MAX_DEPTH} levels)")
    return data


def _depth(value: Any) -> int:
    """Nesting depth of tables and lists, without recursion (the value may be deeper than the stack)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
        else:
            deepest = max(deepest, d)
            continue
        deepest = max(deepest, d + 1)
        if deepest > MAX_DEPTH:
            break
    return deepest


# ---- validation -------------------------------------------------------------------------------


def _key_of(f: dataclasses.Field) -> str:
    return f.metadata.get("key") or f.name


class _Slot(typing.NamedTuple):
    """One field of a spec dataclass, as validation and hashing read it."""

    key: str  # TOML key
    name: str  # attribute
    type: Any
    section: bool  # a nested spec dataclass
    identity: bool
    legacy: Any  # _NO_LEGACY, or the value at which the key stays out of the hash
    since: str
    convert: Callable[[Any], Any] | None  # checks and converts a TOML/JSON value (None for a section)
    default: Any  # the default value (a section: None)


@functools.cache
def _schema(cls: type) -> tuple[_Slot, ...]:
    """The fields of a spec dataclass, computed once per class (typing.get_type_hints evaluates every
    annotation: far too slow to repeat for each row of a grid)."""
    hints = typing.get_type_hints(cls)
    slots = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        section = dataclasses.is_dataclass(tp)
        default = None if section else f.default if f.default is not dataclasses.MISSING else f.default_factory()
        slots.append(_Slot(_key_of(f), f.name, tp, section, f.metadata.get("identity", True),
                           f.metadata.get("legacy", _NO_LEGACY), f.metadata.get("since", ""),
                           None if section else _converter(tp), default))
    return tuple(slots)


@functools.cache
def _keys(cls: type) -> frozenset[str]:
    return frozenset(slot.key for slot in _schema(cls))


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "(top level)"
        raise SpecError(f"{source}: key '{where}': expected a table, got {_show(data)}")
    if not data.keys() <= _keys(cls):
        unknown = sorted(set(data) - _keys(cls))
        raise SpecError(
            f"{source}: unknown key '{prefix}{unknown[0]}'; expected one of {', '.join(sorted(_keys(cls)))}"
        )
    kwargs = {}
    for slot in _schema(cls):
        if slot.key not in data:
            continue
        if slot.section:
            kwargs[slot.name] = _build(slot.type, data[slot.key], source, f"{prefix}{slot.key}.")
        else:
            kwargs[slot.name] = _coerce_slot(slot, data[slot.key], source, prefix)
    return cls(**kwargs)


def _coerce_slot(slot: _Slot, value: Any, source: str, prefix: str) -> Any:
    try:
        out = slot.convert(value)  # type: ignore[misc]
    except _Mismatch:
        raise SpecError(f"{source}: key '{prefix}{slot.key}': expected {_describe(slot.type)}, "
                        f"got {_show(value)}") from None
    # The type fits; is the number allowed? (ranges.py: finite, and within what the run can hold.)
    wrong = ranges.problem(f"{prefix}{slot.key}", out)
    if wrong is not None:
        raise SpecError(f"{source}: key '{prefix}{slot.key}': {wrong}")
    return out


def identity_dict(data: dict[str, Any], source: str = "spec") -> dict[str, Any]:
    """``RunSpec.from_dict(data, source).to_dict(identity_only=True)``, without building the spec:
    reports read it for every stored run. Same validation, same SpecError messages."""
    return _identity_dict(RunSpec, data, source, "")


# Sections repeat across the runs of a grid (one model, one dataset...): their identity dicts are
# remembered by the section's repr (a pure function of it), so a report over 20,000 runs converts
# each distinct section once. Bounded; the callers get copies.
_SECTION_MEMO: dict[tuple[type, str], dict[str, Any]] = {}


def _identity_section(cls: type, data: Any, source: str, prefix: str) -> dict[str, Any]:
    key = (cls, repr(data))
    hit = _SECTION_MEMO.get(key)
    if hit is None:
        hit = _identity_dict(cls, data, source, prefix)
        if len(_SECTION_MEMO) < 10_000:
            _SECTION_MEMO[key] = hit
    return {k: list(v) if isinstance(v, list) else v for k, v in hit.items()}


def _identity_dict(cls: type, data: Any, source: str, prefix: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: key '{prefix.rstrip('.') or '(top level)'}': expected a table, got {_show(data)}")
    if not data.keys() <= _keys(cls):
        unknown = sorted(set(data) - _keys(cls))
        raise SpecError(
            f"{source}: unknown key '{prefix}{unknown[0]}'; expected one of {', '.join(sorted(_keys(cls)))}"
        )
    out: dict[str, Any] = {}
    for slot in _schema(cls):
        present = slot.key in data
        if slot.section:
            value: Any = _identity_section(slot.type, data[slot.key] if present else {}, source,
                                           f"{prefix}{slot.key}.")
            if not slot.identity or not value and slot.since:
                continue
        else:
            value = _coerce_slot(slot, data[slot.key], source, prefix) if present else slot.default
            if not slot.identity or slot.legacy is not _NO_LEGACY and _same(value, slot.legacy):
                continue
            if isinstance(value, (tuple, list)):
                value = list(value)
        out[slot.key] = value
    return out


@functools.cache
def _attributes(cls: type) -> dict[str, str]:
    """TOML key → attribute name ('lambda' → 'lam') of a spec dataclass."""
    return {slot.key: slot.name for slot in _schema(cls)}


def attribute(cls: type, key: str) -> str:
    """The attribute of a spec dataclass that holds TOML key ``key`` ('lambda' → 'lam')."""
    return _attributes(cls)[key]


def get_dotted(spec: Any, dotted: str) -> Any:
    """The value of a dotted TOML key ('method.lambda') of a spec."""
    obj = spec
    for part in dotted.split("."):
        obj = getattr(obj, attribute(type(obj), part))
    return obj


def check_value(dotted: str, value: Any, source: str) -> Any:
    """Validate one value for a dotted key ('points.count') as RunSpec.from_dict would, without
    building a spec (grid files check every swept value this way). The key must be a leaf key."""
    section, _, name = dotted.partition(".")
    for sec in _schema(RunSpec):
        if sec.key == section:
            for slot in _schema(sec.type):
                if slot.key == name:
                    return _coerce_slot(slot, value, source, f"{section}.")
    raise KeyError(dotted)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list {json.dumps(value)}" if len(json.dumps(value)) < 40 else "a list"
    return f"{type(value).__name__} {value!r}"


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        return f"a list of {len(args)} {_describe(args[0])}s"
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}s"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


class _Mismatch(Exception):
    pass


def _convert(tp: Any, value: Any) -> Any:
    return _converter(tp)(value)


def _mismatch() -> Any:
    raise _Mismatch


@functools.cache
def _converter(tp: Any) -> Callable[[Any], Any]:
    """A function that checks and converts a TOML value to ``tp`` (raises _Mismatch), made once per type:
    grids validate thousands of rows, and walking the typing objects for each value is most of it."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = frozenset(a for a in typing.get_args(tp))
        return lambda v: v if isinstance(v, str) and v in allowed else _mismatch()
    if origin in (typing.Union, types.UnionType):
        options = [_converter(a) for a in typing.get_args(tp)]

        def union(v: Any) -> Any:
            for convert in options:
                try:
                    return convert(v)
                except _Mismatch:
                    continue
            raise _Mismatch

        return union
    if origin is tuple:
        items = [_converter(a) for a in typing.get_args(tp)]
        return lambda v: (tuple(c(x) for c, x in zip(items, v))
                          if isinstance(v, (list, tuple)) and len(v) == len(items) else _mismatch())
    if origin is list:
        item = _converter(typing.get_args(tp)[0])
        return lambda v: [item(x) for x in v] if isinstance(v, (list, tuple)) else _mismatch()
    if tp is bool:
        return lambda v: v if isinstance(v, bool) else _mismatch()
    if tp is int:
        return lambda v: v if isinstance(v, int) and not isinstance(v, bool) else _mismatch()
    if tp is float:
        return lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _mismatch()
    if tp is str:
        return lambda v: v if isinstance(v, str) else _mismatch()
    raise TypeError(f"unsupported spec field type {tp}")


def _to_dict(obj: Any, identity_only: bool) -> dict[str, Any]:
    """Nested dict in TOML layout. ``identity_only``: what the hash reads (docs/contracts.md, "Run
    identity"): no ``identity=False`` key, no later key at its legacy value, and no section added
    later (``since``) that is left empty by that rule."""
    out: dict[str, Any] = {}
    for slot in _schema(type(obj)):
        value = getattr(obj, slot.name)
        if identity_only and (not slot.identity or slot.legacy is not _NO_LEGACY and _same(value, slot.legacy)):
            continue
        if slot.section:
            value = _to_dict(value, identity_only)
            if identity_only and not value and slot.since:
                continue
        elif isinstance(value, (tuple, list)):
            value = list(value)
        out[slot.key] = value
    return out


def field_docs() -> dict[str, tuple[Any, str]]:
    """Every dotted key with its default and doc line (for `imacsr spec keys` and the README)."""
    out: dict[str, tuple[Any, str]] = {}
    for section in dataclasses.fields(RunSpec):
        sub = section.default_factory()  # type: ignore[misc]
        for f in dataclasses.fields(sub):
            out[f"{section.name}.{_key_of(f)}"] = (getattr(sub, f.name), f.metadata.get("doc", ""))
    return out


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set tree['a']['b'] = value for dotted 'a.b', creating tables as needed."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise SpecError(f"key '{dotted}': '{part}' is a value, not a table")
        node = nxt
    node[parts[-1]] = value


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of nested dicts: ``over`` wins; neither input is modified."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
