"""Fig. 3 and Fig. 4: the data behind the plots, the axes, the files; the findings checks."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from imacsr_cli import report
from imacsr_cli.report import figures
from reportdb import BASELINE, FIG3, FIG4, spec


def _means(fd, metric="mIoU"):
    d = fd.data[fd.data["metric"] == metric].sort_values(fd.x)
    return dict(zip(d[fd.x], d["mean"]))


def test_fig3_data_baseline_and_finding(report_db):
    url, _ = report_db
    [fd] = report.figure_3(db=url, grid="fig3")
    assert (fd.name, fd.x, fd.model, fd.dataset) == ("fig3", "num_points", "deeplabv3plus", "synthetic")
    assert _means(fd) == pytest.approx({n: 100 * v + 0.1 for n, v in FIG3.items()})
    assert (fd.data["n"] == 2).all() and fd.data["std"].round(6).eq(round(0.2 / math.sqrt(2), 6)).all()
    base = fd.baseline.set_index("metric").loc["mIoU"]
    assert (base["mean"], base["n"]) == (pytest.approx(100 * BASELINE + 0.1), 2)
    assert fd.findings.iloc[0]["verdict"] == "agrees"
    assert fd.findings.iloc[0]["ours"] == "1: 45.10, 2: 46.10, 3: 47.10, 4: 45.60, 5: 44.10"


def test_fig4_finds_its_baseline_by_spec_when_no_conventional_run_is_labelled(report_db):
    url, _ = report_db
    [fd] = report.figure_4(db=url)  # every grid: fig4's runs, fig3's conventional runs as reference
    assert _means(fd) == pytest.approx({s: 100 * v + 0.1 for s, v in FIG4.items()})
    assert fd.baseline.set_index("metric").loc["mIoU", "mean"] == pytest.approx(100 * BASELINE + 0.1)
    assert fd.findings.iloc[0]["verdict"] == "agrees"
    [alone] = report.figure_4(db=url, grid="fig4")  # the grid has no conventional run
    assert (alone.baseline["n"] == 0).all()
    assert any(n.startswith("No reference line: conventional DeepLabv3+/synthetic: not in grid fig4")
               for n in alone.notes)


def test_draw_puts_the_data_on_the_axes(report_db):
    url, _ = report_db
    [fd] = report.figure_3(db=url, grid="fig3")
    fig = report.draw(fd)
    w, h = fig.get_size_inches()
    assert w == pytest.approx(3.5) and h < 3.5
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["mIoU", "mF1", "mPrecision", "mRecall"]
    assert fig._supxlabel.get_text() == "number of intermediate points"
    assert fig._supylabel.get_text() == "% (dataset-level)"
    miou = axes[0]
    line = miou.lines[0]  # the errorbar's data line
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5]
    assert list(line.get_ydata()) == pytest.approx([100 * v + 0.1 for v in FIG3.values()])
    ref = [ln for ln in miou.lines if ln.get_linestyle() == "--"]
    assert len(ref) == 1 and ref[0].get_ydata()[0] == pytest.approx(100 * BASELINE + 0.1)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "iMacSR (mean \u00b1 std)", "Conventional (mean \u00b1 std)"]


def test_save_writes_png_pdf_and_the_data(report_db, tmp_path):
    import matplotlib.image

    url, _ = report_db
    [fd] = report.figure_4(db=url, grid="fig4")
    paths = report.save_figure(fd, tmp_path)
    assert [p.name for p in paths] == ["fig4.png", "fig4.pdf", "fig4.csv"]
    assert paths[1].read_bytes().startswith(b"%PDF")
    img = matplotlib.image.imread(paths[0])
    assert img.shape[1] == pytest.approx(3.5 * 300, abs=2)  # column width at 300 dpi
    data = pd.read_csv(paths[2])
    assert list(data["spacing"].dropna().astype(int).unique()) == [1, 2, 3]
    assert set(data["series"]) == {"iMacSR", "Conventional"}


def test_missing_points_are_marked_not_zero(filler):
    url, fill = filler
    for n in (1, 2, 3):
        fill.add("g", spec(count=n), {"figure": "3"}, v=0.4 + n / 100)
    fill.add("g", spec(count=4), {"figure": "3"}, state="queued")
    fill.add("g", spec(count=5), {"figure": "3"}, state="failed", reason="nonfinite")
    [fd] = report.figure_3(db=url)
    d = fd.data[fd.data["metric"] == "mIoU"].set_index("num_points")
    assert list(d["missing"].fillna("")) == ["", "", "", "1 queued", "1 failed: nonfinite"]
    assert "num_points = 4: 1 queued." in fd.notes
    # best at the largest count measured (3) while 4 and 5 are missing: either could still win
    assert fd.findings.iloc[0]["verdict"] == "cannot tell"
    fig = report.draw(fd)
    marks = [ln for ln in fig.axes[0].lines if ln.get_marker() == "x"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [4, 5]
    assert (fd.baseline["n"] == 0).all()


def test_figure_checks_on_hand_made_data():
    def data(fig, means):
        x = figures.SPECS[fig][0]
        return pd.DataFrame([{x: k, "metric": "mIoU", "mean": v, "std": 0.1, "n": 3} for k, v in means.items()])

    verdict = lambda fig, means: figures.check_figure(fig, data(fig, means), "mIoU").iloc[0]["verdict"]  # noqa: E731
    assert verdict("3", {1: 40, 2: 42, 3: 41, 4: 39, 5: 38}) == "agrees"
    assert verdict("3", {1: 40, 2: 41, 3: 42, 4: 43, 5: 44}) == "disagrees"
    assert verdict("3", {1: 44, 2: 43}) == "cannot tell"
    assert verdict("3", {1: 40, 2: 42, 3: 41}) == "agrees where measured"
    assert verdict("3", {1: 40, 2: 41, 3: 42}) == "cannot tell"  # 4 or 5 may be better still
    assert verdict("4", {1: 40, 2: 42, 3: 41}) == "agrees"
    assert verdict("4", {1: 40, 2: 40.05, 3: 39}) == "agrees (within the seeds' spread)"
    assert verdict("4", {1: 43, 2: 42, 3: 41}) == "disagrees"
    assert verdict("4", {1: 43, 3: 41}) == "cannot tell"
    assert verdict("4", {1: 43, 2: 42}) == "disagrees"  # 1 beats 2, whatever 3 does
