"""`imacsr report`: exit codes, what it prints, what it writes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from imacsr_cli.cli.app import app
from reportdb import spec


def run(*args: str):
    return CliRunner().invoke(app, ["report", *args])


def test_table_iv_markdown(report_db):
    url, ids = report_db
    r = run("--table", "iv", "--format", "md", "--db", url, "--grid", "table_iv")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("**Table IV: iMacSR against conventional training.**")
    assert "| DeepLabv3+ | Conventional | ours | 43.76 \u00b1 0.06 (n=3) | 50.40 \u00b1 0.06 (n=3) |" in r.stdout
    assert "|  |  | gain (rel.) | +9.19% | +11.67% | +15.72% | +9.59% |" in r.stdout
    assert "|  |  | paper gain (pts) | +4.02 | +5.88 | +8.10 | +4.87 |" in r.stdout
    assert "|  |  | verdict | supported | supported | supported | supported |" in r.stdout
    assert "\u2013 (1 running, 1 queued)" in r.stdout and "\u2013 (not in grid table_iv)" in r.stdout


def test_rich_output_in_the_terminal(report_db):
    url, _ = report_db
    r = run("--table", "iv", "--db", url)
    assert r.exit_code == 0, r.stderr
    assert "Cityscapes (%)" in r.stdout and "43.76" in r.stdout and "paper gain" in r.stdout
    assert "dataset-level confusion matrix" in r.stdout


def test_json_has_run_ids_per_cell(report_db):
    url, ids = report_db
    r = run("--table", "iv", "--format", "json", "--db", url)
    doc = json.loads(r.stdout)
    cell = next(c for c in doc["cells"] if c["cell"] == "DeepLabv3+/Conventional/cityscapes" and c["metric"] == "mF1")
    assert cell["run_ids"] == ids[("city", "conventional")] and cell["mean_pct"] == 50.4
    r = run("--all", "--format", "json", "--db", url)
    doc = json.loads(r.stdout)
    assert [t["table"] for t in doc["tables"]] == ["iv", "iv-paper", "vi"] and [f["figure"] for f in doc["figures"]] == ["3", "4"]


def test_all_with_out_writes_every_file(report_db, tmp_path):
    url, _ = report_db
    out = tmp_path / "rep"
    r = run("--all", "--db", url, "--out", str(out))
    assert r.exit_code == 0, r.stderr
    names = ["table_iv.md", "table_iv.tex", "table_iv.csv", "table_iv.json",
             "table_iv_paper.md", "table_iv_paper.tex", "table_iv_paper.csv", "table_iv_paper.json",
             "table_vi.md", "table_vi.tex",
             "table_vi.csv", "table_vi.json", "fig3.png", "fig3.pdf", "fig3.csv", "fig4.png", "fig4.pdf", "fig4.csv"]
    lines = r.stdout.splitlines()
    assert lines[:len(names)] == [f"wrote {out / n}" for n in names]
    # No run of this database logged epochs or kept a checkpoint: the insight figures and Fig. 2 say so.
    assert lines[len(names)] == f"wrote {out / 'index.html'}"
    assert any(ln.startswith("Fig. 2 (DeepLabv3+/cityscapes): ") and "has no checkpoint" in ln for ln in lines)
    assert all((out / n).stat().st_size > 0 for n in names)
    assert (out / "table_iv.tex").read_text().startswith("\\begin{table*}[t]")


def test_a_grid_without_ablations_says_there_is_nothing_to_draw(report_db, tmp_path):
    url, _ = report_db
    r = run("--all", "--db", url, "--grid", "table_iv", "--out", str(tmp_path))
    assert r.exit_code == 0, r.stderr
    assert "Fig. 3: no iMacSR run for it in grid table_iv; nothing to draw" in r.stdout
    assert "Table VI" in (tmp_path / "table_vi.md").read_text()  # the table says why it is empty
    assert "No run labelled for Table VI" in (tmp_path / "table_vi.md").read_text()


def test_explain_lists_the_runs_of_a_cell(report_db):
    url, ids = report_db
    r = run("--table", "iv", "--explain", "DeepLabv3+/iMacSR/cityscapes", "--format", "md", "--db", url)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0] == (
        "Table IV cell DeepLabv3+/iMacSR/cityscapes: 3 run(s) whose specs differ in train.seed (0, 1, 2)")
    for run_id in ids[("city", "imacsr")]:
        assert run_id in r.stdout
    r = run("--table", "vi", "--explain", "III/output", "--format", "json", "--db", url)
    doc = json.loads(r.stdout)
    assert doc["cell"] == "Table VI cell DeepLabv3+/synthetic/III/output" and len(doc["runs"]) == 2
    r = run("--table", "iv", "--explain", "Nope/iMacSR/x", "--db", url)
    assert r.exit_code == 2 and "Table IV has no cell 'Nope/iMacSR/x'" in r.stderr


def test_mixed_cell_exit_2_with_the_message(filler):
    url, fill = filler
    fill.add("a", spec("cityscapes", "imacsr", 0, count=3), {"table": "iv"}, v=0.47)
    fill.add("b", spec("cityscapes", "imacsr", 1, count=1), {"table": "iv"}, v=0.45)
    r = run("--table", "iv", "--db", url)
    assert r.exit_code == 2
    assert r.stderr == (
        "error: Table IV cell DeepLabv3+/iMacSR/cityscapes mixes runs whose specs differ in points.count (1, 3); "
        "restrict with --grid or fix the grid\n"
    )
    assert run("--table", "iv", "--db", url, "--grid", "a").exit_code == 0


def test_usage_errors(report_db, tmp_path):
    url, _ = report_db
    r = run("--db", url)
    assert r.exit_code == 2 and "say what to report" in r.stderr
    r = run("--paper", "--figure", "3")
    assert r.exit_code == 2 and "--paper shows the paper's Table IV alone" in r.stderr
    assert run("--table", "v", "--db", url).exit_code == 2
    assert run("--table", "iv", "--format", "html", "--db", url).exit_code == 2
    r = run("--table", "iv", "--db", str(tmp_path / "none.db"))
    assert r.exit_code == 2 and "no results database" in r.stderr
    r = run("--table", "iv", "--db", url, "--grid", "nope")
    assert r.exit_code == 2 and "no grid 'nope'" in r.stderr
    r = run("--all", "--explain", "x", "--db", url)
    assert r.exit_code == 2 and "--explain needs exactly one of --table or --figure" in r.stderr


def test_the_papers_table_iv_needs_no_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results/imacsr.db here
    monkeypatch.delenv("IMACSR_DB", raising=False)
    r = run("--table", "iv", "--paper", "--format", "md")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("**Table IV as published in the paper.**")
    assert "| DeepLabv3+ | Conventional | paper | 43.76 | 50.40 | 51.54 | 50.77 | 76.02 |" in r.stdout
    assert "| SeaFormer | Conventional | paper | 27.40 |" in r.stdout
    assert "|  |  | gain (pts) | +4.02 | +5.88 | +8.10 | +4.87 | +0.11 |" in r.stdout
    assert "|  |  | gain (rel.) | +9.19% | +11.67% | +15.72% | +9.59% | +0.14% |" in r.stdout
    assert not (tmp_path / "results").exists()
    r = run("--paper", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["table"] == "iv-paper" and len(doc["cells"]) == 72
    cell = next(c for c in doc["cells"] if (c["model"], c["method"], c["dataset"], c["metric"]) ==
                ("topformer", "imacsr", "synthiasf", "mRecall"))
    assert cell["value_pct"] == 33.20 and cell["gain_pts"] == pytest.approx(0.21)
    r = run("--paper", "--out", str(tmp_path / "rep"))
    assert r.exit_code == 0 and (tmp_path / "rep" / "table_iv_paper.tex").exists()
