"""Datasets. Every dataset module in this package registers its dataset on import.

The helper modules below define no dataset; they are imported by the datasets (or the trainer) that
use them, not here, so that discovering the datasets imports no torch (paired.py and transforms.py
build torch datasets; see docs/design-notes.md). A new dataset is one new file; a new helper module
is added to this list.
"""

import importlib
import pkgutil

HELPERS = {"registry", "check", "fake", "files", "labels", "paired", "splits", "transforms"}

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in HELPERS and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
