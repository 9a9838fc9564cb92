"""`imacsr data check` and `imacsr data fake`: inspect a dataset tree, or write a small fake one."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from imacsr_cli.errors import SpecError

data = typer.Typer(help="Check a dataset tree (Cityscapes, CamVid, SYNTHIA-SF), or write a fake one.",
                   no_args_is_help=True)


@data.command("check")
def check(
    root: Path = typer.Argument(..., help="Dataset root, e.g. ~/data/cityscapes."),
    dataset: str = typer.Option(..., "--dataset", help="cityscapes, camvid or synthiasf."),
    split: str = typer.Option("", "--split", help="Split protocol [default: the dataset's]."),
    classes: str = typer.Option("", "--classes", help="Class set [default: the dataset's]."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Read every image and label; report counts, sizes, unpaired and stray files, label values out
    of range, the class histogram and the split sizes. Exit 1 when the tree is not usable."""
    from imacsr_cli.data.check import check_tree

    report = check_tree(dataset, root, split, classes)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _render(report)
    if not report.usable:
        raise typer.Exit(1)


def _render(r) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False, soft_wrap=True)  # paths stay on one line
    con.print(f"[bold]{r.dataset}[/] root {r.root}" + (f"  (layout {r.layout})" if r.layout else ""))
    if r.split_sizes:
        where = ""
        if r.split_file:
            where = f"; list {r.split_file}" + ("" if r.split_file_stored else " (not written yet)")
        con.print(f"split {r.split}: train {r.split_sizes['train']}, val {r.split_sizes['val']}  ({r.split_rule}{where})")
    con.print(f"class set {r.classes}: {len(r.class_names)} classes")
    sizes = ", ".join(f"{size} ×{n}" for size, n in sorted(r.image_sizes.items(), key=lambda kv: -kv[1]))
    con.print(f"images {r.images}" + (f"; sizes {sizes}" if sizes else ""))
    for title, paths in (("unpaired", r.unpaired), ("stray", r.stray)):
        if paths:
            con.print(f"{title} files ({len(paths)}):")
            for p in paths[:10]:
                con.print(f"  {p}")
            if len(paths) > 10:
                con.print(f"  ... and {len(paths) - 10} more")
    if r.out_of_range:
        shown = ", ".join(f"{v}: {n}" for v, n in list(r.out_of_range.items())[:10])
        con.print(f"label values out of range (value: pixels): {shown}")
    total = sum(r.histogram.values()) + r.ignored_pixels
    if total:
        table = Table(title="label pixels per class (training ids)")
        for col, justify in (("id", "right"), ("class", "left"), ("pixels", "right"), ("%", "right")):
            table.add_column(col, justify=justify)
        for i, (name, n) in enumerate(r.histogram.items()):
            table.add_row(str(i), name, str(n), f"{100 * n / total:.2f}")
        table.add_row("255", "(ignored)", str(r.ignored_pixels), f"{100 * r.ignored_pixels / total:.2f}")
        con.print(table)
    for w in r.warnings:
        con.print(f"warning: {w}")
    if r.usable:
        con.print("usable: yes")
    else:
        con.print(f"usable: NO ({len(r.problems)} problems)")
        for p in r.problems:
            con.print(f"  problem: {p}")


@data.command("fake")
def fake(
    dataset: str = typer.Option(..., "--dataset", help="cityscapes, camvid or synthiasf."),
    out: Path = typer.Option(..., "--out", help="Folder to write (new or empty)."),
    n: int = typer.Option(0, "--n", show_default=False, help="Images (cityscapes: per split) [default: 4 cityscapes, 24 others]."),
    size: str = typer.Option("", "--size", help="WxH, e.g. 128x64 [default: small, the dataset's aspect]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic content."),
    layout: str = typer.Option("segnet", "--layout", help="camvid: segnet or full (960×720-style colour labels)."),
    bits: int = typer.Option(8, "--bits", help="synthiasf: bit depth of GTLeft, 8 or 16."),
) -> None:
    """Write a small tree in the dataset's real layout (names, folders, encodings) with synthetic pixels."""
    from imacsr_cli.data.fake import write_fake

    parsed = None
    if size:
        w, sep, h = size.lower().partition("x")
        if not (sep and w.isdigit() and h.isdigit()):
            raise SpecError(f"--size {size!r}: expected WxH, e.g. 128x64")
        parsed = (int(w), int(h))
    tree = write_fake(dataset, out, n=n, size=parsed, seed=seed, layout=layout, bits=bits)
    typer.echo(f"wrote {tree.dataset} ({tree.layout}): {tree.images} images, {tree.files} files in {tree.root}")


def register(app: typer.Typer) -> None:
    app.add_typer(data, name="data")
