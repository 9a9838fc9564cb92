"""A results database filled with known metric values through the Store's API (no training).

``fill(store)`` (the ``report_db`` fixture of conftest.py) makes four grids:

- ``table_iv`` (labels table = "iv"): DeepLabv3+ conventional / iMacSR on
  cityscapes (3 seeds each, means equal to the paper's values), camvid (conventional: one seed;
  iMacSR: one queued, one running), synthiasf (conventional failed with oom; no iMacSR run), synthetic
  (one seed each: not in the paper);
- ``vi`` (labels table = "vi"): synthetic, 1-3 points x input/central/output, 2 seeds;
- ``fig3`` (labels figure = "3"): synthetic, 1-5 points at the input, spacing 1, 2 seeds, plus a
  conventional baseline; the 1-3 point runs are the same runs as Table VI's input column;
- ``fig4`` (labels figure = "4"): synthetic, 2 points at the input, spacing 1-3, 2 seeds.

Final metrics: mIoU = v, mF1 = v + 0.05, mPrecision = v + 0.06, mRecall = v + 0.04 (dataset level)
and paper/<m> = the same + 0.01 (the eq. (13) convention), so every number a test asserts follows
from the v given here.
"""

from __future__ import annotations

from typing import Any

from imacsr_cli.spec import RunSpec, resolve
from imacsr_cli.store.store import Store

OFFSETS = {"mIoU": 0.0, "mF1": 0.05, "mPrecision": 0.06, "mRecall": 0.04}
PAPER_SHIFT = 0.01
TINY = {"train_size": [32, 32], "eval_size": [32, 32], "num_train": 4, "num_val": 2}


def spec(dataset: str = "synthetic", method: str = "imacsr", seed: int = 0, count: int = 3,
         position: str = "input", spacing: int = 1, **extra: Any) -> RunSpec:
    data = {"name": dataset, **(TINY if dataset == "synthetic" else {})}
    d: dict[str, Any] = {"model": {"name": "deeplabv3plus"}, "data": data, "method": {"name": method},
                         "points": {"count": count, "position": position, "spacing": spacing},
                         "train": {"epochs": 2, "batch_size": 2, "seed": seed}}
    for key, value in extra.items():  # e.g. train__epochs=3
        section, name = key.split("__")
        d.setdefault(section, {})[name] = value
    return resolve(RunSpec.from_dict(d))


def result(v: float, per_metric: dict[str, float] | None = None) -> dict[str, Any]:
    """A result.json dict (docs/contracts.md) whose mIoU is v."""
    ds = {m: v + off for m, off in OFFSETS.items()}
    ds.update(per_metric or {})
    return {"metrics": {"dataset": dict(ds, per_class={}), "paper": {m: x + PAPER_SHIFT for m, x in ds.items()}},
            "epochs": 2}


class Filler:
    """Puts runs into a Store in a given state, the way the scheduler would."""

    def __init__(self, store: Store):
        self.store = store

    def add(self, grid: str, s: RunSpec, labels: dict[str, str] | list[dict[str, str]] | None,
            state: str = "succeeded", v: float | None = None, per_metric: dict[str, float] | None = None,
            reason: str | None = None) -> str:
        self.store.enqueue(grid, [{"run_id": s.run_id, "spec": s, "labels": labels}])
        if state == "queued":
            return s.run_id
        if self.store.get(s.run_id).state != "queued":  # already there from another grid
            return s.run_id
        claimed = self.store.claim("tests", run_ids=[s.run_id])
        assert claimed is not None and claimed.run_id == s.run_id
        if state == "succeeded":
            self.store.finish(s.run_id, "tests", "succeeded", final=result(v, per_metric))
        elif state == "failed":
            self.store.finish(s.run_id, "tests", "failed", reason=reason or "crashed", message="boom", exit_code=1)
        return s.run_id


# Paper Table IV, DeepLabv3+ on Cityscapes (fractions): our seeds average to exactly these.
CITY = {"conventional": {"mIoU": 0.4376, "mF1": 0.5040, "mPrecision": 0.5154, "mRecall": 0.5077},
        "imacsr": {"mIoU": 0.4778, "mF1": 0.5628, "mPrecision": 0.5964, "mRecall": 0.5564}}
CITY_SPREAD = {"conventional": (-0.0006, 0.0, 0.0006), "imacsr": (-0.001, 0.0, 0.001)}

# Table VI mIoU by (count, position), seed 0; seed 1 adds 0.002 (std = 0.002 / sqrt(2) * 100 %).
VI = {
    (1, "input"): 0.450, (1, "central"): 0.430, (1, "output"): 0.440,
    (2, "input"): 0.460, (2, "central"): 0.435, (2, "output"): 0.420,
    (3, "input"): 0.470, (3, "central"): 0.432, (3, "output"): 0.410,
}
FIG3 = {1: 0.450, 2: 0.460, 3: 0.470, 4: 0.455, 5: 0.440}  # 1-3 equal VI's input column
FIG4 = {1: 0.460, 2: 0.475, 3: 0.450}  # spacing 1 equals FIG3[2] (the same runs)
BASELINE = 0.400


def fill(store: Store) -> dict[str, Any]:
    f = Filler(store)
    ids: dict[str, Any] = {}
    iv = {"table": "iv"}
    for method in ("conventional", "imacsr"):
        ids[("city", method)] = [
            f.add("table_iv", spec("cityscapes", method, seed), iv, v=0.0,
                  per_metric={m: CITY[method][m] + CITY_SPREAD[method][seed] for m in OFFSETS})
            for seed in range(3)
        ]
    ids["camvid_conv"] = f.add("table_iv", spec("camvid", "conventional", 0), iv, v=0.7602)
    ids["camvid_queued"] = f.add("table_iv", spec("camvid", "imacsr", 0), iv, state="queued")
    ids["camvid_running"] = f.add("table_iv", spec("camvid", "imacsr", 1), iv, state="running")
    ids["synthia_failed"] = f.add("table_iv", spec("synthiasf", "conventional", 0), iv, state="failed", reason="oom")
    # 3 epochs: not the same runs as the ablations' (2 epochs), whose baseline is another run
    ids["synth_conv"] = f.add("table_iv", spec("synthetic", "conventional", 0, train__epochs=3), iv, v=0.300)
    ids["synth_imacsr"] = f.add("table_iv", spec("synthetic", "imacsr", 0, spacing=2, train__epochs=3), iv, v=0.330)

    for (n, pos), v in VI.items():
        for seed in (0, 1):
            labels = [{"table": "vi", "series": "I" * n, "position": pos}]
            f.add("vi", spec(count=n, position=pos, seed=seed), labels, v=v + 0.002 * seed)
    for n, v in FIG3.items():
        for seed in (0, 1):
            f.add("fig3", spec(count=n, seed=seed), {"figure": "3"}, v=v + 0.002 * seed)
    for seed in (0, 1):
        f.add("fig3", spec(method="conventional", seed=seed), {"figure": "3"}, v=BASELINE + 0.002 * seed)
    for sp, v in FIG4.items():
        for seed in (0, 1):
            f.add("fig4", spec(count=2, spacing=sp, seed=seed), {"figure": "4"}, v=v + 0.002 * seed)
    return ids
