"""How eapu writes a number in a table: the terminal's, the HTML page's and the Markdown's
(one module without plotting imports, so the command line can use it and stay quick).

>>> format_value(0.000123), format_value(2786581), format_value(None), format_value(31.46)
('1.23e-04', '2786581', '–', '31.5')
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_value"]


def format_value(v: Any, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` significant digits, ints exact, missing as "–"."""
    if v is None or v == "":
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–" if math.isnan(v) else ("∞" if v > 0 else "−∞")
        if v != 0 and (abs(v) >= 10**digits or abs(v) < 1e-3):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}"
    if isinstance(v, dict):  # e.g. a tuned method's validation score by candidate
        return " / ".join(f"{k}: {format_value(x, digits)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(format_value(x, digits) for x in v)
    return str(v)
