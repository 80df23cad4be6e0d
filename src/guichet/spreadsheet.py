"""CSV cells that no spreadsheet evaluates (OWASP "CSV Injection").

Shared by every CSV guichet writes for a person to open: the citizen's exchanges download
and the journal export for an investigation. The JSON formats keep the values as they are.
"""

from __future__ import annotations

# What makes a spreadsheet read a cell as a formula; leading spaces are skipped by some
# spreadsheets before they look.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_cell(value: str) -> str:
    """``value`` as a CSV cell no spreadsheet evaluates: a leading trigger gets a ``'``."""
    return f"'{value}" if value.lstrip(" ").startswith(FORMULA_TRIGGERS) else value
