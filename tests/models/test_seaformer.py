"""SeaFormer: parameter counts, output shapes, intermediate points (real hooks), backbone weights."""

from __future__ import annotations

import json
import math

import pytest
import torch

from imacsr_cli.errors import SpecError
from imacsr_cli.models import registry
from imacsr_cli.spec.points import select_indices
from imacsr_cli.spec.runspec import RunSpec

VARIANTS = ("tiny", "small", "base", "large")

# Exact counts of this implementation; they equal the official fudan-zvg/SeaFormer model (backbone +
# LightHead) instantiated with the ADE20K configs.
PARAMS = {
    ("tiny", 150): 1_667_318,
    ("tiny", 19): 1_654_611,
    ("small", 150): 3_990_118,
    ("small", 19): 3_973_219,
    ("base", 150): 8_605_654,
    ("base", 19): 8_584_563,
    ("large", 150): 13_951_510,
    ("large", 19): 13_926_227,
}
# The spec's figures for the official code (shared/specs/models.md §3.7).
OFFICIAL = {
    ("tiny", 150): 1.67e6,
    ("tiny", 19): 1.65e6,
    ("small", 150): 3.99e6,
    ("small", 19): 3.97e6,
    ("base", 150): 8.61e6,
    ("base", 19): 8.58e6,
    ("large", 150): 13.95e6,
    ("large", 19): 13.93e6,
}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: these inputs are tiny, and on a shared 2-core machine two threads
    spinning against other processes make the tests many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(variant: str, num_classes: int = 19, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return registry.build("seaformer", variant, num_classes)


def capture_points(model: torch.nn.Module, points: list[registry.Point], x: torch.Tensor) -> dict[str, object]:
    """Forward `x` with a hook on every point's module; returns point name → captured output."""
    captured: dict[str, object] = {}
    handles = [
        model.get_submodule(p.module).register_forward_hook(
            lambda _m, _a, out, name=p.name: captured.__setitem__(name, out)
        )
        for p in points
    ]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return captured


def test_registered() -> None:
    entry = registry.get("seaformer")
    assert entry.variants == VARIANTS
    assert entry.default_variant == "small"
    assert registry.check_variant(entry, "") == "small"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("num_classes", [150, 19])
def test_parameter_count(variant: str, num_classes: int) -> None:
    n = registry.count_parameters(build(variant, num_classes))
    assert n == PARAMS[variant, num_classes]
    assert abs(n - OFFICIAL[variant, num_classes]) / OFFICIAL[variant, num_classes] < 0.01


@pytest.mark.parametrize("size", [(64, 64), (96, 160), (100, 150), (97, 131)])
def test_logits_at_one_eighth(size: tuple[int, int]) -> None:
    model = build("tiny").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 19, math.ceil(size[0] / 8), math.ceil(size[1] / 8))


def test_train_mode_backward_on_odd_size() -> None:
    model = build("large", 7).train()
    out = model(torch.randn(2, 3, 100, 150))
    assert out.shape == (2, 7, 13, 19)
    out.mean().backward()
    assert model.backbone.smb1.stem_block[0].c.weight.grad is not None


def test_points_metadata_without_building() -> None:
    pts = registry.points("seaformer", "tiny")
    assert [p.name for p in pts] == [
        "stem", "smb1.1", "smb1.2", "smb1.3", "smb2.1", "smb2.2", "smb3.1", "smb3.2",
        "smb4.1", "trans1.1", "trans1.2", "smb5.1", "trans2.1", "trans2.2", "fuse1", "fuse2", "head",
    ]  # fmt: skip
    assert [(p.channels, p.stride) for p in pts[-6:]] == [(160, 64)] * 3 + [(64, 8), (96, 8), (96, 8)]
    large = {p.name: (p.channels, p.stride) for p in registry.points("seaformer", "large")}
    assert large["stem"] == (32, 2)
    assert large["trans1.3"] == (192, 16) and large["trans2.3"] == (256, 32) and large["trans3.3"] == (320, 64)
    assert large["fuse3"] == (192, 8)
    lengths = {v: len(registry.points("seaformer", v)) for v in VARIANTS}
    assert lengths == {"tiny": 17, "small": 19, "base": 21, "large": 23}


@pytest.mark.parametrize("variant", VARIANTS)
def test_points_hooks_match_metadata(variant: str) -> None:
    model = build(variant).train()
    pts = registry.points("seaformer", variant)
    captured = capture_points(model, pts, torch.randn(2, 3, 128, 128))
    for p in pts:
        out = captured[p.name]
        assert isinstance(out, torch.Tensor), p.name
        assert out.shape == (2, p.channels, 128 // p.stride, 128 // p.stride), p.name
    # Every point is on the graph of the backbone: an adapter loss there trains the stem.
    sum(captured[p.name].float().pow(2).mean() for p in pts).backward()
    assert model.backbone.smb1.stem_block[0].c.weight.grad.abs().sum() > 0


def test_points_spatial_size_is_ceil_on_odd_input() -> None:
    pts = registry.points("seaformer", "tiny")
    captured = capture_points(build("tiny").eval(), pts, torch.randn(1, 3, 97, 131))
    for p in pts:
        assert captured[p.name].shape[-2:] == (math.ceil(97 / p.stride), math.ceil(131 / p.stride)), p.name


@pytest.mark.parametrize("position", ["input", "central", "output"])
def test_every_selection_of_three_points_captures(position: str) -> None:
    pts = registry.points("seaformer", "small")
    for spacing in (1, 3, 9):
        chosen = [pts[i] for i in select_indices(len(pts), 3, position, spacing)]
        captured = capture_points(build("small").eval(), chosen, torch.randn(1, 3, 64, 64))
        assert [captured[p.name].shape[1] for p in chosen] == [p.channels for p in chosen]


def test_weights_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(SpecError) as err:
        registry.build("seaformer", "small", 19, str(path))
    assert str(err.value) == f"key 'model.weights': file not found: {path}"


def test_weights_load_imagenet_style_checkpoint(tmp_path) -> None:
    source = build("tiny", 150, seed=1)
    # The official ImageNet checkpoints hold the backbone keys (+ a linear classifier) under state_dict_ema.
    state = dict(source.backbone.state_dict())
    state["linear.weight"] = torch.zeros(1000, 160)
    path = tmp_path / "seaformer_tiny.pth"
    torch.save({"state_dict_ema": state, "epoch": 600}, path)
    model = registry.build("seaformer", "tiny", 19, str(path))
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def test_weights_that_match_nothing_or_another_variant(tmp_path) -> None:
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, unrelated)
    with pytest.raises(SpecError, match="no tensor"):
        registry.build("seaformer", "tiny", 19, str(unrelated))
    other = tmp_path / "small.pth"
    torch.save(build("small").backbone.state_dict(), other)
    with pytest.raises(SpecError, match="another variant"):
        registry.build("seaformer", "tiny", 19, str(other))


def test_one_epoch_imacsr_run_on_synthetic_data(tmp_path) -> None:
    """The issue's acceptance run: 1 CPU epoch of iMacSR with M = 3 through the trainer's Python API."""
    from imacsr_cli.train import loop  # the trainer, not the models, depends on the rest of the package

    spec = {
        "model": {"name": "seaformer", "variant": "tiny"},
        "data": {"name": "synthetic", "train_size": [64, 64], "eval_size": [64, 64], "num_train": 4, "num_val": 2},
        "points": {"count": 3, "position": "input", "spacing": 1},
        "train": {"epochs": 1, "batch_size": 2},
    }
    (tmp_path / "spec.json").write_text(json.dumps(RunSpec.from_dict(spec).to_dict()))
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        assert loop.run(tmp_path) == 0, (tmp_path / "train.log").read_text()
    finally:
        torch.use_deterministic_algorithms(deterministic)  # the trainer sets it for its process
    result = json.loads((tmp_path / "result.json").read_text())
    assert len(result["spec"]["points"]["names"]) == 3
    assert 0.0 <= result["metrics"]["dataset"]["mIoU"] <= 1.0
