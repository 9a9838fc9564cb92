"""Segmentation models. Every module in this package registers its models on import."""

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "registry" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
