"""Parameter checks shared by the graph settings and the estimators."""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_real(
    name: str, value: Any, *, positive: bool = False, unit: str = "", allow_none: bool = False
) -> None:
    """Raise a ``ValueError`` unless ``value`` is a finite real number, > 0 with ``positive``
    and >= 0 otherwise (bools and strings refused; ``None`` passes with ``allow_none``)."""
    if allow_none and value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (0 < value if positive else 0 <= value)
        or not value < math.inf
    ):
        what = "a positive finite number" if positive else "a finite number >= 0"
        raise ValueError(
            f"{name} must be {what}{f' ({unit})' if unit else ''}"
            f"{' or None' if allow_none else ''}, got {value!r}"
        )
