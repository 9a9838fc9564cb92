"""A report cell whose runs were trained by different code versions says so (schema v3 runs.code)."""

from __future__ import annotations

from reportdb import result, spec

from imacsr_cli import report
from imacsr_cli.report import renderers


def _finish(store, s, v, code):
    store.enqueue("g", [{"run_id": s.run_id, "spec": s, "labels": {"table": "iv"}}])
    assert store.claim("tests", run_ids=[s.run_id]).run_id == s.run_id
    store.finish(s.run_id, "tests", "succeeded", final={**result(v), "code": code})


def _cell(table, **where):
    f = table.frame
    for k, v in where.items():
        f = f[f[k] == v]
    return f.iloc[0]


def test_a_cell_mixing_code_versions_is_marked_and_named(filler):
    url, fill = filler
    old = {"imacsr": "0.1.0", "commit": "a" * 40, "dirty": False}
    new = {"imacsr": "0.2.0", "commit": "b" * 40, "dirty": True}
    _finish(fill.store, spec("cityscapes", "imacsr", 0), 0.40, old)
    _finish(fill.store, spec("cityscapes", "imacsr", 1), 0.42, new)
    _finish(fill.store, spec("cityscapes", "conventional", 0), 0.30, old)
    _finish(fill.store, spec("cityscapes", "conventional", 1), 0.32, old)
    t = report.table_iv(db=url)
    mixed = _cell(t, method="imacsr", dataset="cityscapes", metric="mIoU")
    same = _cell(t, method="conventional", dataset="cityscapes", metric="mIoU")
    assert mixed["code_versions"] == ("imacsr 0.1.0, commit aaaaaaaaaaaa",
                                      "imacsr 0.2.0, commit bbbbbbbbbbbb (dirty)")
    assert same["code_versions"] == ("imacsr 0.1.0, commit aaaaaaaaaaaa",)
    assert "(n=2, mixed code)" in renderers.render(t, "md")
    assert renderers.render(t, "md").count("mixed code)") == 4  # the four metrics of that one cell
    assert ("DeepLabv3+/iMacSR/cityscapes: mixed code: its runs were trained by imacsr 0.1.0, commit "
            "aaaaaaaaaaaa; imacsr 0.2.0, commit bbbbbbbbbbbb (dirty).") in t.notes
    assert not any("DeepLabv3+/Conventional" in n and "mixed code" in n for n in t.notes)


def test_runs_without_a_recorded_code_version_do_not_mix(filler):
    url, fill = filler
    fill.add("g", spec("cityscapes", "imacsr", 0), {"table": "iv"}, v=0.40)  # finished without code
    fill.add("g", spec("cityscapes", "imacsr", 1), {"table": "iv"}, v=0.42)
    t = report.table_iv(db=url)
    assert _cell(t, method="imacsr", dataset="cityscapes", metric="mIoU")["code_versions"] == ("unknown code",)
    assert "mixed code" not in renderers.render(t, "md")
