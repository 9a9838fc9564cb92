"""The model registry's metadata (what `imacsr models`, resolve and the plan read without torch)
against the real built models: parameter counts at several class counts, and every point's module."""

from __future__ import annotations

import pytest
import torch

from imacsr_cli.models import registry

VARIANTS = [(name, variant) for name in registry.names() for variant in registry.get(name).variants]


@pytest.mark.parametrize("name, variant", VARIANTS, ids=[f"{n}-{v}" for n, v in VARIANTS])
def test_parameter_counts_in_the_metadata_are_the_built_models(name, variant):
    entry = registry.get(name)
    for classes in (3, 19):
        model = registry.build(name, variant, classes)
        assert entry.parameter_count(variant, classes) == registry.count_parameters(model)
        # Every point the metadata lists is a module of the built model with that many channels out.
        modules = dict(model.named_modules())
        assert all(p.module in modules for p in entry.points(variant))


def test_a_model_without_sizes_in_its_metadata_says_so():
    entry = registry.ModelEntry(name="x", variants=("a",), default_variant="a", build="m:f", points=lambda v: [])
    assert entry.parameter_count("a", 19) is None


def test_a_builder_path_must_name_a_function():
    with pytest.raises(ValueError, match="module:function"):
        registry.register(registry.ModelEntry(name="y", variants=("a",), default_variant="a", build="nocolon",
                                              points=lambda v: []))


def test_the_builder_is_imported_only_when_a_model_is_built():
    entry = registry.get("deeplabv3plus")
    assert entry.build == "imacsr_cli.models._deeplab:build"
    net = entry.builder()("smp", 2, None)
    assert isinstance(net, torch.nn.Module)
