"""cityvitals: a city vital-signs monitoring and reopening-scenario engine.

The public surface is imported lazily so that ``cityvitals --help`` stays fast.

>>> import engine
>>> engine.__version__
'0.1.0'
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "City": ("engine.city", "City"),
    "Catalog": ("engine.catalog", "Catalog"),
    "CatalogError": ("engine.catalog", "CatalogError"),
    "Engine": ("engine.core", "Engine"),
    "Feeds": ("engine.feeds", "Feeds"),
    "Scenario": ("engine.scenario", "Scenario"),
    "explain": ("engine.indices", "explain"),
    "compute_indices": ("engine.indices", "compute_indices"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
