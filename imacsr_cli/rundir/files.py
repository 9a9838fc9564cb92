"""The JSON files of a run directory: one atomic writer, spec.json's one writer, result.json's reader.

``write_atomic`` is the only way a file of a run is written whole: a temporary file beside it, fsync,
rename (and an fsync of the directory), so a reader sees the old file or the new one, never half of
one, and a crash leaves no partial result. The trainer's checkpoints go through it too
(train/checkpoint.py passes torch.save as the writer).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from imacsr_cli import metric_names as mn
from imacsr_cli.errors import ImacsrError
from imacsr_cli.rundir.events import json_safe
from imacsr_cli.rundir.paths import RunPaths


class ResultError(ImacsrError):
    """result.json (or a result given to the store) is not what a trainer writes."""

    exit_code = 2


# ---- writing ------------------------------------------------------------------------------------


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` whole or not at all: ``write(fh)`` fills a temporary file in the same folder,
    which is fsynced and renamed over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename itself survives a power cut once the folder is synced
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_json(path: Path, data: Any) -> None:
    """Strict JSON (NaN and inf become null), indented, written atomically."""
    text = json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def write_spec(paths: RunPaths, spec: Mapping[str, Any]) -> bool:
    """RUN_DIR/spec.json, the trainer's input: ``spec`` is a resolved spec's ``to_dict()`` (TOML layout).
    Creates RUN_DIR; leaves an equal spec.json alone (returns False), else writes it atomically."""
    paths.root.mkdir(parents=True, exist_ok=True)
    try:
        if json.loads(paths.spec.read_text(encoding="utf-8")) == json_safe(dict(spec)):
            return False
    except (OSError, ValueError):
        pass
    write_json(paths.spec, dict(spec))
    return True


# ---- result.json --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeVersion:
    """The code that trained a run: imacsr's version, its git commit and whether the checkout had
    uncommitted changes to tracked files (commit and dirty are None outside a git checkout)."""

    imacsr: str | None = None
    commit: str | None = None
    dirty: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"imacsr": self.imacsr, "commit": self.commit, "dirty": self.dirty}

    def describe(self) -> str:
        """'imacsr 0.1.0, commit 1a2b3c4d5e6f (dirty)' — for people."""
        parts = [f"imacsr {self.imacsr or '?'}"]
        if self.commit:
            parts.append(f"commit {self.commit[:12]}" + (" (dirty)" if self.dirty else ""))
        else:
            parts.append("no git commit")
        return ", ".join(parts)

    @classmethod
    def from_dict(cls, d: Any, where: str = "code") -> CodeVersion:
        if not isinstance(d, Mapping):
            raise ResultError(f"{where}: expected an object with imacsr, commit, dirty, got {_kind(d)}")
        for key, types in (("imacsr", (str,)), ("commit", (str,)), ("dirty", (bool,))):
            if d.get(key) is not None and not isinstance(d[key], types):
                raise ResultError(f"{where}: key {key!r}: expected {types[0].__name__} or null, got {_kind(d[key])}")
        return cls(d.get("imacsr"), d.get("commit"), d.get("dirty"))


@dataclass(frozen=True)
class Scores:
    """One convention's metrics: the four means (fractions, None = no class had a value) and the
    per-class lists (aligned with ``Result.classes``; None = class absent from truth and prediction)."""

    means: dict[str, float | None]
    per_class: dict[str, list[float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.means, "per_class": self.per_class}


@dataclass(frozen=True)
class Result:
    """A parsed, validated result.json (docs/contracts.md): the trainer's word that a run succeeded."""

    scores: dict[str, Scores]  # metric_names.DATASET (always) and metric_names.PAPER (when computed)
    run_id: str | None = None
    spec: dict[str, Any] | None = None
    confusion_matrix: list[list[int]] | None = None  # rows = ground truth, columns = prediction
    classes: list[str] = field(default_factory=list)
    epochs: int | None = None
    wall_seconds: float | None = None
    images_per_s: float | None = None
    device: str | None = None
    torch: str | None = None
    code: CodeVersion | None = None  # None for runs trained before imacsr recorded it

    @property
    def dataset(self) -> Scores:
        return self.scores[mn.DATASET]

    def final_metrics(self) -> dict[str, float]:
        """The final metric rows the store keeps (name → value): mIoU..., paper/mIoU..., iou/<class>
        (classes with a value), wall_seconds, images_per_s."""
        out: dict[str, float] = {}
        for convention, scores in self.scores.items():
            for name in mn.MAIN:
                if scores.means.get(name) is not None:
                    out[mn.convention_name(name, convention)] = float(scores.means[name])
        iou = self.dataset.per_class.get("iou") or []
        classes = self.classes or [str(i) for i in range(len(iou))]
        for cls, value in zip(classes, iou):
            if value is not None:
                out[mn.iou(cls)] = float(value)
        for name, value in ((mn.WALL_SECONDS, self.wall_seconds), (mn.IMAGES_PER_S, self.images_per_s)):
            if value is not None:
                out[name] = float(value)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The result.json layout."""
        return {
            "run_id": self.run_id, "spec": self.spec,
            "metrics": {c: s.to_dict() for c, s in self.scores.items()},
            "confusion_matrix": self.confusion_matrix, "classes": list(self.classes), "epochs": self.epochs,
            "wall_seconds": self.wall_seconds, "images_per_s": self.images_per_s, "device": self.device,
            "torch": self.torch, "code": self.code.to_dict() if self.code else None,
        }

    @classmethod
    def from_dict(cls, d: Any, source: str = "result") -> Result:
        """Validate a decoded result.json. ResultError names the file and the key on any mismatch.
        Required: ``metrics.dataset`` with the four means; everything else may be absent or null."""
        if not isinstance(d, Mapping):
            raise ResultError(f"{source}: expected a JSON object, got {_kind(d)}")
        metrics = d.get("metrics")
        if not isinstance(metrics, Mapping) or mn.DATASET not in metrics:
            raise ResultError(f"{source}: key 'metrics.{mn.DATASET}': missing (not a result.json of imacsr)")
        classes = d.get("classes") or []
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ResultError(f"{source}: key 'classes': expected a list of class names")
        if not classes:  # per-class values given as {class: value} name their classes themselves
            per_class = metrics[mn.DATASET].get("per_class") if isinstance(metrics[mn.DATASET], Mapping) else None
            named = [v for v in (per_class or {}).values() if isinstance(v, Mapping)]
            classes = [str(c) for c in named[0]] if named else []
        scores = {}
        for convention in (mn.DATASET, mn.PAPER):
            if metrics.get(convention) is not None:
                scores[convention] = _scores(metrics[convention], f"{source}: key 'metrics.{convention}", classes)
        epochs = d.get("epochs")
        if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0):
            raise ResultError(f"{source}: key 'epochs': expected a whole number >= 0, got {epochs!r}")
        run_id = _opt(d, "run_id", str, source)
        spec = d.get("spec")
        if spec is not None and not isinstance(spec, Mapping):
            raise ResultError(f"{source}: key 'spec': expected an object, got {_kind(spec)}")
        cm = d.get("confusion_matrix")
        if cm is not None and not (isinstance(cm, list) and all(isinstance(row, list) for row in cm)):
            raise ResultError(f"{source}: key 'confusion_matrix': expected a list of rows")
        code = d.get("code")
        return cls(
            scores=scores, run_id=run_id, spec=dict(spec) if spec is not None else None, confusion_matrix=cm,
            classes=list(classes), epochs=epochs,
            wall_seconds=_number(d, "wall_seconds", source), images_per_s=_number(d, "images_per_s", source),
            device=_opt(d, "device", str, source), torch=_opt(d, "torch", str, source),
            code=CodeVersion.from_dict(code, f"{source}: key 'code'") if code is not None else None,
        )


def read_result(paths: RunPaths, run_id: str | None = None) -> Result:
    """RUN_DIR/result.json, validated. ``run_id``: the run it must belong to (a result.json of another
    run, e.g. a copied directory, is refused). ResultError (one line: file, key, what was expected)
    for a file that is unreadable, not JSON, or not a result; FileNotFoundError when there is none."""
    source = str(paths.result)
    try:
        text = paths.result.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultError(f"{source}: unreadable ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultError(f"{source}: not JSON ({exc})") from None
    result = Result.from_dict(data, source)
    if run_id is not None and result.run_id != run_id:
        raise ResultError(f"{source}: key 'run_id': expected {run_id!r}, got {result.run_id!r} (a foreign result)")
    return result


def _scores(block: Any, where: str, classes: list[str]) -> Scores:
    if not isinstance(block, Mapping):
        raise ResultError(f"{where}': expected an object, got {_kind(block)}")
    means: dict[str, float | None] = {}
    for name in mn.MAIN:
        if name not in block:
            raise ResultError(f"{where}.{name}': missing")
        means[name] = _fraction(block[name], f"{where}.{name}'")
    per_class = block.get("per_class") or {}
    if not isinstance(per_class, Mapping):
        raise ResultError(f"{where}.per_class': expected an object, got {_kind(per_class)}")
    lists: dict[str, list[float | None]] = {}
    for key, values in per_class.items():
        if isinstance(values, Mapping):  # {class: value}, an older and a hand-written form
            values = [values.get(c) for c in classes] if classes else list(values.values())
        if not isinstance(values, list):
            raise ResultError(f"{where}.per_class.{key}': expected a list, got {_kind(values)}")
        if classes and len(values) != len(classes):
            raise ResultError(f"{where}.per_class.{key}': {len(values)} values for {len(classes)} classes")
        lists[str(key)] = [_fraction(v, f"{where}.per_class.{key}'") for v in values]
    return Scores(means, lists)


def _fraction(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise ResultError(f"{where}: expected a fraction in [0, 1] or null, got {value!r}")
    return float(value)


def _number(d: Mapping[str, Any], key: str, source: str) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ResultError(f"{source}: key {key!r}: expected a number >= 0 or null, got {value!r}")
    return float(value)


def _opt(d: Mapping[str, Any], key: str, typ: type, source: str) -> Any:
    value = d.get(key)
    if value is not None and not isinstance(value, typ):
        raise ResultError(f"{source}: key {key!r}: expected {typ.__name__} or null, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), repr(value))
