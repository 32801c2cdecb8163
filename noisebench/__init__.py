"""noisebench: a benchmark harness for learning with noisy labels.

The public API. Importing it is cheap: torch, sklearn and optuna load only when used.
"""

from __future__ import annotations

from noisebench.errors import UserError
from noisebench.registry import (
    Bounds,
    Context,
    Method,
    PerSample,
    get_method,
    list_methods,
    register_method,
)
from noisebench.space import Categorical, Float, Int

__version__ = "0.1.0"

__all__ = [
    "Bounds",
    "Categorical",
    "Context",
    "Float",
    "Int",
    "Method",
    "PerSample",
    "UserError",
    "get_method",
    "list_methods",
    "register_method",
]
