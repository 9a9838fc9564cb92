"""Diagnostics, curves, convergence, Fig. 2 and index.html from real runs.

One tiny grid (conventional vs iMacSR, 2 seeds, 3 epochs on the synthetic street scenes) is trained
through the real `imacsr run-grid` once per module. Every figure's data is checked against values
computed here, independently, from the runs' own events.jsonl (and, for Fig. 2, from the checkpoints),
never against pixels.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from imacsr_cli.cli.app import app
from imacsr_cli.report import extra as ext
from imacsr_cli.report import insight, qualitative

GRID = """
[grid]
name = "tiny_iv"
seeds = [0, 1]
labels = { table = "iv" }

[base]
model.name = "deeplabv3plus"
data.name = "synthetic"
data.train_size = [32, 32]
data.eval_size = [32, 32]
data.num_train = 4
data.num_val = 3
train.epochs = 3
train.batch_size = 2
points.count = 2
points.position = "input"
points.spacing = 1

[sweep]
"method.name" = ["conventional", "imacsr"]
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(work dir, db url, {run_id: {"dir", "method", "seed", "epochs": [epoch events]}})."""
    work = tmp_path_factory.mktemp("insight")
    (work / "tiny.toml").write_text(GRID)
    db = f"sqlite:///{work / 'imacsr.db'}"
    done = subprocess.run([sys.executable, "-m", "imacsr_cli", "run-grid", "tiny.toml", "--jobs", "2", "--db", db],
                          cwd=work, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 0, done.stdout + done.stderr
    runs = {}
    for d in sorted((work / "results" / "runs").iterdir()):
        spec = json.loads((d / "spec.json").read_text())
        events = [json.loads(line) for line in (d / "events.jsonl").read_text().splitlines()]
        runs[d.name] = {"dir": d, "method": spec["method"]["name"], "seed": spec["train"]["seed"],
                        "points": spec["points"]["names"], "epochs": [e for e in events if e["event"] == "epoch"]}
    assert len(runs) == 4
    return work, db, runs


def _by_method(runs, method):
    return sorted((r for r in runs.items() if r[1]["method"] == method), key=lambda kv: kv[1]["seed"])


def _expected(runs, method, split, name, scale=1.0):
    """{epoch: (mean, std, n)} over the seeds, from the events themselves."""
    out = {}
    for epoch in (1, 2, 3):
        vals = [scale * next(e for e in r["epochs"] if e["epoch"] == epoch)[split][name]
                for _, r in _by_method(runs, method)
                if name in next(e for e in r["epochs"] if e["epoch"] == epoch)[split]]
        out[epoch] = (statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else math.nan, len(vals))
    return out


def _rows(fig, panel, series, line):
    d = fig.data[(fig.data["panel"] == panel) & (fig.data["series"] == series) & (fig.data["line"] == line)]
    return {int(x): (m, s, n) for x, m, s, n in zip(d["x"], d["mean"], d["std"], d["n"])}


def _close(got, want):
    assert set(got) == set(want)
    for k in want:
        gm, gs, gn = got[k]
        wm, ws, wn = want[k]
        assert gn == wn and gm == pytest.approx(wm, rel=1e-9, abs=1e-12)
        assert (math.isnan(gs) and math.isnan(ws)) or gs == pytest.approx(ws, rel=1e-9, abs=1e-12)


def test_the_trainer_logs_every_diagnostic_once_per_epoch(trained):
    _, _, runs = trained
    for run in runs.values():
        assert [e["epoch"] for e in run["epochs"]] == [1, 2, 3]
        for e in run["epochs"]:
            assert e["train"]["diag/steps"] == 2.0  # 4 images, batch 2
            assert e["train"]["diag/grad_norm2"] > 0
            for p in run["points"]:
                h = e["train"][f"diag/entropy/{p}"]
                assert 0.0 < h <= 1.0 and e["train"][f"diag/feature_norm/{p}"] > 0
                assert e["train"][f"diag/gamma_norm/{p}"] > 0  # stem's BN, layer1.0's bn2
                # Faithful NE is Σ p log p over the same channels: H/log C = -NE/log C, step by step.
                c = 64  # both points of DeepLabv3+'s ResNet-18 at the input have 64 channels
                assert h == pytest.approx(-e["train"][f"ne/{p}"] / math.log(c), rel=1e-5)
        if run["method"] == "conventional":
            assert not [k for k in run["epochs"][0]["train"] if k.startswith("diag/entropy/")]


def test_diagnostics_figure_data_equals_the_events(trained):
    _, db, runs = trained
    [fig] = insight.build(["diagnostics"], db=db, grid="tiny_iv")
    points = next(r for _, r in _by_method(runs, "imacsr"))["points"]
    assert [p.key for p in fig.panels] == ["entropy", "feature_norm", "gamma_norm", "mi", "ne", "grad_norm2"]
    for panel, prefix in (("entropy", "diag/entropy/"), ("feature_norm", "diag/feature_norm/"),
                          ("gamma_norm", "diag/gamma_norm/"), ("mi", "mi/"), ("ne", "ne/")):
        for p in points:
            _close(_rows(fig, panel, "iMacSR", p), _expected(runs, "imacsr", "train", prefix + p))
    _close(_rows(fig, "grad_norm2", "iMacSR", "all parameters"), _expected(runs, "imacsr", "train", "diag/grad_norm2"))
    assert set(fig.data["n"]) == {2}


def test_curves_data_equals_the_events(trained):
    _, db, runs = trained
    [fig] = insight.build(["curves"], db=db, grid="tiny_iv")
    assert set(fig.data["series"]) == {"Conventional", "iMacSR"}
    for method, label in (("conventional", "Conventional"), ("imacsr", "iMacSR")):
        _close(_rows(fig, "loss", label, ""), _expected(runs, method, "train", "loss"))
        _close(_rows(fig, "ce", label, ""), _expected(runs, method, "train", "ce"))
        _close(_rows(fig, "val_mIoU", label, ""), _expected(runs, method, "val", "mIoU", scale=100.0))
    for p in next(r for _, r in _by_method(runs, "imacsr"))["points"]:
        _close(_rows(fig, "ne", "iMacSR", p), _expected(runs, "imacsr", "train", f"ne/{p}"))
    assert fig.data[fig.data["series"] == "Conventional"]["panel"].isin(["loss", "ce", "val_mIoU"]).all()


def test_convergence_running_mean_fit_and_verdict(trained):
    _, db, runs = trained
    [fig] = insight.build(["convergence"], db=db, grid="tiny_iv")
    for method, label in (("conventional", "Conventional"), ("imacsr", "iMacSR")):
        per_seed = []
        for _, r in _by_method(runs, method):
            t, total, curve = 0.0, 0.0, {}
            for e in r["epochs"]:
                t += e["train"]["diag/steps"]
                total += e["train"]["diag/steps"] * e["train"]["diag/grad_norm2"]
                curve[t] = total / t
            per_seed.append(curve)
        ts = sorted(per_seed[0])
        assert ts == [2.0, 4.0, 6.0]
        want = {t: (statistics.mean(c[t] for c in per_seed), statistics.stdev(c[t] for c in per_seed), 2) for t in ts}
        got = _rows(fig, "running_mean", label, "(1/T) \u03a3 \u2016\u2207L_T\u2016\u00b2")
        _close({int(k): v for k, v in got.items()}, {int(k): v for k, v in want.items()})
        # c: least squares on logs with the exponent fixed at -1/2.
        means = np.array([want[t][0] for t in ts])
        c = float(np.exp(np.mean(np.log(means * np.sqrt(ts)))))
        fit = fig.fits[fig.fits["series"] == label].iloc[0]
        assert fit["c"] == pytest.approx(c, rel=1e-9)
        ref = _rows(fig, "running_mean", label, "c/\u221aT")
        assert all(ref[int(t)][0] == pytest.approx(c / math.sqrt(t), rel=1e-9) for t in ts)
        # The free exponent per seed (np.polyfit on the logs) decides the verdict.
        bs = [np.polyfit(np.log(ts), np.log([cv[t] for t in ts]), 1)[0] for cv in per_seed]
        assert list(fit["seed_exponents"]) == pytest.approx(bs, rel=1e-9)
        verdict = ("supported" if all(b <= -0.5 for b in bs) else
                   "contradicted" if all(b > -0.5 for b in bs) else "inconclusive")
        assert fit["verdict"] == verdict


def test_fig2_rows_are_the_checkpoints_predictions(trained):
    import torch

    from imacsr_cli.data import registry as data_registry
    from imacsr_cli.models import registry as model_registry
    from imacsr_cli.spec import RunSpec, resolve

    _, db, runs = trained
    figs, skipped = qualitative.figure_2(db, "tiny_iv", images=2)
    assert skipped == [] and len(figs) == 1
    fig = figs[0]
    seed0 = {r["method"]: rid for rid, r in runs.items() if r["seed"] == 0}
    assert fig.runs == {"Conventional": seed0["conventional"], "iMacSR": seed0["imacsr"]} and fig.seed == 0
    assert [row.index for row in fig.rows] == [0, 2]  # 3 evaluation images, 2 chosen: the first and the last
    for column, run_id in fig.runs.items():
        d = runs[run_id]["dir"]
        spec = resolve(RunSpec.from_json(d / "spec.json"))
        model = model_registry.build("deeplabv3plus", "", 11)
        state = torch.load(d / "checkpoint.pt", weights_only=True)["trainee"]
        model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
        model.eval()
        val = data_registry.build(spec.data, "val")
        for row in fig.rows:
            image, label = val[row.index]
            with torch.no_grad():
                logits = torch.nn.functional.interpolate(model(image[None]), size=label.shape, mode="bilinear",
                                                         align_corners=False)
                pred = logits.argmax(1)[0].numpy()
            assert np.array_equal(row.predictions[column], pred) and np.array_equal(row.truth, label.numpy())
            acc = 100.0 * float((pred == label.numpy()).mean())
            got = fig.data[(fig.data["image"] == row.index) & (fig.data["column"] == column)]
            assert got["pixel_accuracy"].iloc[0] == pytest.approx(acc) and got["run_id"].iloc[0] == run_id


def test_fig2_without_a_checkpoint_is_one_line_and_exit_2(trained):
    _, db, runs = trained
    run_id = next(rid for rid, r in runs.items() if r["seed"] == 0 and r["method"] == "imacsr")
    ckpt = runs[run_id]["dir"] / "checkpoint.pt"
    moved = ckpt.with_name("checkpoint.pt.away")
    shutil.move(ckpt, moved)
    try:
        r = CliRunner().invoke(app, ["report", "--figure", "2", "--grid", "tiny_iv", "--db", db])
    finally:
        shutil.move(moved, ckpt)
    assert r.exit_code == 2
    msg = f"iMacSR run {run_id} has no checkpoint at {ckpt}"
    assert msg in r.stderr and len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert "Traceback" not in r.stderr + r.stdout


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.imgs, self.links, self.tags, self.cells = [], [], [], [], []
        self._in_td = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a["src"])
        if tag in ("a", "link", "script"):
            self.links.append(a.get("href") or a.get("src") or "")
        if tag == "td":
            self._in_td = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_td = False

    def handle_data(self, data):
        if self._in_td and data.strip():
            self.cells.append(data.strip())


def test_all_writes_every_figure_and_an_offline_index_html(trained, tmp_path):
    work, db, runs = trained
    out = tmp_path / "report"
    r = CliRunner().invoke(app, ["report", "--all", "--grid", "tiny_iv", "--db", db, "--out", str(out)])
    assert r.exit_code == 0, r.stdout + r.stderr
    for name in ("diagnostics", "curves", "convergence", "fig2"):
        for suffix in (".png", ".pdf", ".csv"):
            assert (out / f"{name}{suffix}").stat().st_size > 0, name + suffix
    assert f"wrote {out / 'index.html'}" in r.stdout
    page = _Page()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert "script" not in page.tags and "link" not in page.tags  # inline CSS, nothing to fetch
    assert {"verdicts", "table_iv", "table_vi", "fig2", "diagnostics", "curves", "convergence"} <= set(page.ids)
    assert page.imgs and all(not s.startswith(("http:", "https:", "//", "/")) and (out / s).is_file()
                             for s in page.imgs)
    assert {"fig2.png", "diagnostics.png", "curves.png", "convergence.png"} <= set(page.imgs)
    for href in page.links:
        assert not href.startswith(("http:", "https:", "//")), href
        if not href.startswith("#"):
            assert (out / href).exists(), href  # files beside it and run directories, by relative path
    commit = (json.loads((next(iter(runs.values()))["dir"] / "result.json").read_text()).get("code") or {}).get("commit")
    for run_id, run in runs.items():
        assert run_id in page.cells  # each cell lists its runs: id, seed, state, commit
        assert any(h.rstrip("/").endswith(run_id) for h in page.links)
    assert "succeeded" in page.cells and (commit is None or commit[:12] in page.cells)
    assert "Theorem 1 (iMacSR)" in page.cells  # the convergence verdicts are among the verdicts
    assert "Table IV" in (out / "index.html").read_text()  # the paper's numbers beside ours, as Table IV prints them


def test_runs_plot_draws_one_run(trained, tmp_path):
    _, db, runs = trained
    run_id = next(rid for rid, r in runs.items() if r["method"] == "imacsr")
    r = CliRunner().invoke(app, ["runs", "plot", run_id[:6], "--db", db, "--out", str(tmp_path)])
    assert r.exit_code == 0, r.stdout + r.stderr
    for name in ("diagnostics", "curves", "convergence"):
        assert (tmp_path / f"{name}.png").is_file()
    [fig] = insight.build(["diagnostics"], db=db, run_ids=[run_id])
    assert set(fig.data["n"]) == {1} and fig.data["std"].isna().all()  # one seed: no spread, never a zero


def test_figure_json_and_text(trained):
    _, db, runs = trained
    r = CliRunner().invoke(app, ["report", "--figure", "diagnostics", "--grid", "tiny_iv", "--db", db,
                                 "--format", "json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["figure"] == "diagnostics" and {p["key"] for p in doc["panels"]} >= {"entropy", "gamma_norm"}
    r = CliRunner().invoke(app, ["report", "--figure", "convergence", "--grid", "tiny_iv", "--db", db])
    assert r.exit_code == 0 and "shape of Theorem 1:" in r.stdout


def test_page_sections_from_a_database_without_epoch_rows(report_db, tmp_path):
    url, _ = report_db
    rep = ext.build_extra(["diagnostics", "curves", "convergence"], db=url, grid="table_iv")
    assert rep.figures == [] and len(rep.skipped) == 3
    assert all("no run in grid table_iv has per-epoch rows" in s for s in rep.skipped)


def test_author_code_configurations_are_told_apart_by_their_code_label():
    from imacsr_cli.report.frames import runs_from_records
    from imacsr_cli.spec.grid import GridSpec

    rows = GridSpec.find("ablations/author_code.toml").expand()
    recs = [{"run_id": r.run_id, "model": r.spec.model.name, "dataset": r.spec.data.name,
             "method": r.spec.method.name, "seed": r.spec.train.seed, "state": "succeeded", "spec": r.spec.to_dict(),
             "cells": {"author_code": [r.labels] if isinstance(r.labels, dict) else r.labels}} for r in rows]
    confs = insight.configurations(runs_from_records(recs))
    assert sorted(s.label for s in confs) == sorted(
        f"{m} (code {c})" for m in ("Conventional", "iMacSR") for c in ("ours", "softmax", "void", "author"))
    assert all(len(s.run_ids) == 3 and s.seeds == (0, 1, 2) for s in confs)
    # Without the grid's labels the differing keys name them, defaults included.
    unlabelled = insight.configurations(runs_from_records([dict(r, cells={}) for r in recs]))
    assert "iMacSR (data.void_logit=False, method.ce_input=logits)" in {s.label for s in unlabelled}


def test_the_report_modules_do_not_import_torch():
    code = ("import sys; import imacsr_cli.report.extra, imacsr_cli.report.qualitative, imacsr_cli.report.html; "
            "import imacsr_cli.cli.report; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_code_gains_by_hand():
    from imacsr_cli.report.frames import runs_from_records
    from imacsr_cli.spec.grid import GridSpec

    rows = GridSpec.find("ablations/author_code.toml").expand()
    # conventional / iMacSR mIoU by code (seeds 0, 1, 2 add 0, 0.01, 0.02)
    base = {("ours", "conventional"): 0.40, ("ours", "imacsr"): 0.41,
            ("author", "conventional"): 0.30, ("author", "imacsr"): 0.36}
    recs, metrics = [], {}
    for r in rows:
        labels = r.labels if isinstance(r.labels, dict) else r.labels[0]
        key = (labels["code"], r.spec.method.name)
        if key not in base:
            continue
        recs.append({"run_id": r.run_id, "model": "deeplabv3plus", "dataset": "cityscapes",
                     "method": r.spec.method.name, "seed": r.spec.train.seed, "state": "succeeded",
                     "spec": r.spec.to_dict(), "cells": {"author_code": [labels]}})
        metrics[r.run_id] = {"mIoU": base[key] + 0.01 * r.spec.train.seed}
    g = insight.code_gains(runs_from_records(recs, metrics))
    assert list(g["code"]) == ["ours", "author"]
    ours, author = g.iloc[0], g.iloc[1]
    assert ours["conventional"] == pytest.approx(41.0) and ours["imacsr"] == pytest.approx(42.0)
    assert ours["conventional_std"] == pytest.approx(1.0) and ours["imacsr_n"] == 3
    assert ours["gain"] == pytest.approx(1.0) and ours["relative_gain"] == pytest.approx(100 / 41)
    assert author["gain"] == pytest.approx(6.0) and author["relative_gain"] == pytest.approx(600 / 31)
    md = insight.code_gains_markdown(g)
    assert "| DeepLabv3+ | cityscapes | author | 31.00 \u00b1 1.00 (n=3) | 37.00 \u00b1 1.00 (n=3) | +6.00 | +19.35% |" in md
