"""Column files: CSV and Parquet, with an optional time column that gives the rate."""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from absl import logging

from ahms_fm.data.readers.common import (
    UNIX_MIN,
    agree_rate,
    check_finite,
    csv_header,
    is_number,
    select_channels,
)
from ahms_fm.data.recording import DataError, Recording


@dataclasses.dataclass
class _NonNumeric:
    """A Parquet column of a non-numeric type (reported only if it is read)."""

    name: str
    type: object


def _shown(value, limit: int = 40) -> str:
    """A cell as an error message shows it: whole if short, else its start and length."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value)):,} characters)"


def _numeric_column(path, name: str, series, where: Callable[[int], str]) -> np.ndarray:
    import pandas as pd

    if isinstance(series, _NonNumeric):
        raise DataError(path, f"column {name!r} has type {series.type}, not numeric")
    if not pd.api.types.is_numeric_dtype(series):
        parsed = pd.to_numeric(series, errors="coerce")
        bad = parsed.isna() & series.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                path,
                f"{where(row)}, column {name!r}: cannot parse "
                f"{_shown(series.iloc[row])} as a number",
            )
        series = parsed
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    check_finite(path, values, lambda r: f"{where(r)}, column {name!r}")
    return values


def _rate_from_time(path, t: np.ndarray, where: Callable[[int], str]) -> float:
    """Sampling rate implied by a time column (seconds); checks it is uniform."""
    n = len(t)
    if n < 2:
        raise DataError(path, "need at least 2 samples to infer the rate from the time column")
    steps = np.diff(t)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        raise DataError(path, f"{where(i + 1)}: time does not increase ({t[i]} -> {t[i + 1]})")
    rate = (n - 1) / (t[-1] - t[0])
    if round(rate) > 0 and abs(rate - round(rate)) <= 1e-4 * rate:
        rate = float(round(rate))  # times printed with few decimals: snap 63.9999 to 64
    dev = np.abs(t - t[0] - np.arange(n) / rate)
    if dev.max() > 0.5 / rate:
        i = int(np.argmax(dev))
        raise DataError(
            path,
            f"time column is not uniform: {where(i)} is at {t[i]} s, "
            f"expected {t[0] + i / rate} s at {rate:g} Hz (a gap or jitter "
            "over half a sample)",
        )
    return rate


def _columns_to_recording(
    path, columns: dict, where, sample_rate, channels, participant, recording
) -> Recording:
    """Shared by CSV and Parquet: pick channels, find the rate, build the Recording."""
    names = list(columns)
    time_name = next((n for n in names if n.strip().lower() == "time"), None)
    signals = [n for n in names if n != time_name]
    chosen = (
        [signals[i] for i in select_channels(path, signals, channels, len(signals))]
        if channels and signals
        else signals
    )
    if not chosen:
        raise DataError(path, "no signal columns (only a time column)")
    signal = np.stack([_numeric_column(path, c, columns[c], where) for c in chosen], axis=1)
    start = math.nan
    if time_name is not None:
        t = _numeric_column(path, time_name, columns[time_name], where)
        rate = agree_rate(path, _rate_from_time(path, t, where), sample_rate, "time column")
        if t[0] > UNIX_MIN:  # absolute unix times rather than seconds from the start
            start = float(t[0])
    elif sample_rate is None:
        raise DataError(
            path, "no sampling rate: the file has no 'time' column and sample_rate was not given"
        )
    else:
        rate = sample_rate
    return Recording(participant, recording, signal, rate, str(path), tuple(chosen), start)


def read_csv(path: Path, sample_rate, channels, participant, recording) -> Recording:
    import pandas as pd

    names = csv_header(path)
    df = pd.read_csv(
        path, header=0, names=names, skipinitialspace=True, encoding="utf-8-sig", low_memory=False
    )
    if len(df) == 0:
        raise DataError(path, "no samples (header only)")
    if _cut_mid_row(path, len(names)):
        logging.warning(
            "%s: the file ends in the middle of line %d (no newline, a field "
            "shorter than the line above): probably cut off, e.g. by an "
            "interrupted copy; that line is dropped, and the recording may be "
            "shorter than it should be",
            path,
            len(df) + 1,
        )
        df = df.iloc[:-1]
        if len(df) == 0:
            raise DataError(path, "no complete samples (the only row is cut off)")
    columns = {n: df[n] for n in names}
    return _columns_to_recording(
        path, columns, lambda r: f"line {r + 2}", sample_rate, channels, participant, recording
    )


def _cut_mid_row(path: Path, n_fields: int) -> bool:
    """Whether the file ends part-way through its last row: no final newline, and that row
    has fewer fields, or fewer decimals in a field, than the row above it."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 4096))
        tail = f.read()
    if not tail or tail.endswith((b"\n", b"\r")):
        return False
    lines = tail.decode("utf-8", errors="replace").splitlines()
    if len(lines) < 2:
        return False
    last, above = (next(csv.reader([line])) for line in lines[-2:][::-1])
    if len(last) < n_fields:
        return True

    def decimals(field: str) -> int:
        field = field.strip()
        return len(field.split(".", 1)[1]) if "." in field and is_number(field) else -1

    return any(
        0 <= decimals(a) and decimals(b) < decimals(a) for a, b in zip(above, last, strict=False)
    )


def read_parquet(path: Path, sample_rate, channels, participant, recording) -> Recording:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if table.num_rows == 0:
        raise DataError(path, "no samples (no rows)")
    columns = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):  # a datetime time column -> unix seconds
            col = col.cast(pa.timestamp("ns")).cast(pa.int64())
            columns[name] = col.to_pandas() / 1e9
        elif (
            pa.types.is_integer(col.type)
            or pa.types.is_floating(col.type)
            or pa.types.is_boolean(col.type)
            or pa.types.is_decimal(col.type)
        ):
            columns[name] = col.to_pandas()
        else:
            columns[name] = _NonNumeric(name, col.type)
    return _columns_to_recording(
        path, columns, lambda r: f"row {r}", sample_rate, channels, participant, recording
    )
