"""Participant label tables (CSV): one row per participant, typed column by column."""

from __future__ import annotations

import math
import re
from pathlib import Path

from ahms_fm.data.readers.common import FALSE, MISSING, TRUE, as_data_error, csv_header, is_number
from ahms_fm.data.recording import DataError


def parse_column(values: list[str]) -> list:
    """One label column: numbers, booleans or strings; missing -> NaN (numbers) / None."""
    present = [v for v in values if v.lower() not in MISSING]
    if present and all(is_number(v) for v in present):
        ints = all(re.fullmatch(r"[+-]?\d+", v) for v in present)
        return [math.nan if v.lower() in MISSING else int(v) if ints else float(v) for v in values]
    if present and all(v.lower() in TRUE | FALSE for v in present):
        return [None if v.lower() in MISSING else v.lower() in TRUE for v in values]
    return [None if v.lower() in MISSING else v for v in values]


def read_participants_csv(path, id_column: str = "participant") -> dict[str, dict]:
    """`{participant id: {column: value}}` from a CSV with a header row.

    Each column is typed as a whole: all numbers -> int/float (missing -> NaN); all of
    yes/no/true/false/y/n/t/f (0/1 allowed among them) -> bool (missing -> None); otherwise
    strings (missing -> None). A column of only 0/1 stays numeric 0/1 (sex coded 0/1, say).
    Missing means empty, NA, N/A, NaN, null or none. Duplicate or empty ids are errors.
    """
    import pandas as pd

    path = Path(path)
    with as_data_error(path):
        if not path.is_file():
            raise DataError(path, "no such file")
        names = csv_header(path)
        if id_column not in names:
            raise DataError(path, f"no id column {id_column!r}; columns are {names}")
        df = pd.read_csv(
            path, dtype=str, keep_default_na=False, encoding="utf-8-sig", header=0, names=names
        )
    ids = [v.strip() for v in df[id_column]]
    columns = {c: parse_column([v.strip() for v in df[c]]) for c in names if c != id_column}
    table, line_of = {}, {}
    for i, pid in enumerate(ids):
        if not pid:
            raise DataError(path, f"line {i + 2}: empty participant id")
        if pid in table:
            raise DataError(
                path, f"duplicate participant id {pid!r} (lines {line_of[pid]} and {i + 2})"
            )
        line_of[pid] = i + 2
        table[pid] = {c: vals[i] for c, vals in columns.items()}
    return table
