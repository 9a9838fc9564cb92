"""Modules loaded on first use. Discovering the datasets (the plan, `imacsr models`, `spec`) imports
every dataset module for its metadata; numpy and Pillow at their top would cost every such start
about 0.2 s, though only reading images needs them."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """``name`` as a module whose code runs at its first attribute access (stdlib LazyLoader); the
    module itself if something imported it already."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system does: `import PIL; PIL.Image` must find the submodule (matplotlib)
        setattr(sys.modules[parent], child, module)
    return module
