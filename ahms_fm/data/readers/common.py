"""Shared by the readers: converting library failures into `DataError`s that name the
file, the skip-or-raise policy of scans, and small checks of values, rates and headers."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ahms_fm.data.recording import DataError

UNIX_MIN, UNIX_MAX = 946_684_800.0, 4_102_444_800.0  # 2000-01-01 .. 2100-01-01 (UTC)

MISSING = {"", "na", "n/a", "nan", "null", "none", "unknown"}

TRUE = {"yes", "y", "true", "t", "1"}

FALSE = {"no", "n", "false", "f", "0"}


@contextlib.contextmanager
def as_data_error(path, what: str = "cannot read"):
    """Re-raise anything a library throws as a DataError naming `path`."""
    try:
        yield
    except DataError:
        raise
    except Exception as e:  # any library failure becomes a named DataError
        raise DataError(path, f"{what}: {type(e).__name__}: {e}") from e


def check_policy(on_error: str, errors: list | None) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if on_error == "skip" and errors is None:
        raise ValueError("on_error='skip' needs an `errors` list to record (path, problem) in")


def attempt(fn: Callable, on_error: str, errors: list | None):
    """fn() or, under on_error='skip', None with the DataError recorded in `errors`."""
    try:
        return fn()
    except DataError as e:
        if on_error == "raise":
            raise
        errors.append((e.path, e.problem))
        return None


def check_finite(path, values: np.ndarray, where: Callable[[int], str], what: str = "value"):
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        kind = "NaN/missing" if np.isnan(values[bad]).any() else "infinite"
        raise DataError(path, f"{where(row)}: {kind} {what} ({int(bad.sum())} bad in all)")


def agree_rate(path, file_rate: float, given: float | None, what: str) -> float:
    """The file's rate, after checking it against the caller's where both exist."""
    if given is not None and abs(file_rate - given) > 1e-3 * given:
        raise DataError(
            path, f"sample_rate={given:g} Hz was given but the {what} says {file_rate:g} Hz"
        )
    return float(file_rate)


def utc(when: dt.datetime) -> float:
    """Unix seconds of a naive (zone-less) datetime taken as UTC."""
    return when.replace(tzinfo=dt.timezone.utc).timestamp()


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_header(path: Path) -> list[str]:
    """Column names from a CSV's first line; checks it is a real header."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        first = f.readline()
    if not first.strip():
        raise DataError(path, "empty file (or blank first line where the header should be)")
    names = [n.strip() for n in next(csv.reader([first]))]
    if all(is_number(n) for n in names if n):
        raise DataError(
            path,
            "no header row: the first line holds numbers, expected column names (e.g. time,ppg)",
        )
    if not all(names):
        hint = (
            (
                ": the first column looks like pandas' unnamed index; write the table with "
                "to_csv(..., index=False), or name that column"
            )
            if names and not names[0] and all(names[1:])
            else ""
        )
        raise DataError(path, f"empty column name in the header {names}{hint}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(path, f"duplicate column names in the header: {dupes}")
    return names


def select_channels(path, names: list[str] | None, channels, count: int) -> list[int]:
    """Column indices of `channels` (all where None): each a name among `names` or an int
    index (negative counts from the end). Unnamed columns (`names` None) take indices only."""
    if not channels:
        return list(range(count))
    out = []
    for c in channels:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not -count <= c < count:
                raise DataError(path, f"channel index {c} out of range for {count} channel(s)")
            out.append(int(c) % count)
        elif names is None:
            raise DataError(
                path,
                f"channel {c!r} selected by name, but the file's {count} "
                "columns have no names: select by index (0, 1, ...) or name "
                "them with channel_names",
            )
        elif c not in names:
            raise DataError(path, f"no channel {c!r}; channels are {list(names)}")
        else:
            out.append(names.index(c))
    return out
