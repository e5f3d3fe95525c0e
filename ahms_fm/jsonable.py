"""Values as JSON can hold them: NumPy scalars and arrays, paths and tuples made plain.

`jsonable(v)` converts recursively; with `finite=True` a non-finite float becomes None
(strict JSON, for files other tools read); `default` is for `json.dumps(default=...)`.
"""

from __future__ import annotations

import math
from pathlib import PurePath

import numpy as np


def jsonable(v, *, finite: bool = False):
    """`v` with NumPy values, paths and tuples as plain Python, recursively."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    elif isinstance(v, np.generic):
        v = v.item()
    elif isinstance(v, PurePath):
        return str(v)
    if isinstance(v, float) and finite and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: jsonable(x, finite=finite) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x, finite=finite) for x in v]
    return v


def default(x):
    """`json.dumps(default=default)`: what `json` cannot write by itself, made plain."""
    if isinstance(x, np.ndarray | np.generic | PurePath):
        return jsonable(x)
    raise TypeError(f"{type(x).__name__} is not JSON serializable")
