"""Empatica E4 exports: a folder of CSVs (BVP, ACC, and the optional HR, IBI, tags)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ahms_fm.data.readers.common import (
    UNIX_MAX,
    UNIX_MIN,
    as_data_error,
    check_finite,
    is_number,
)
from ahms_fm.data.recording import DataError, Recording

E4_BVP_RATE = 64.0

E4_ACC_RATE = 32.0

E4_ACC_UNITS_PER_G = 64.0  # ACC.csv counts are 1/64 g (range +-2 g)


def _read_e4_csv(path: Path, ncols: int, expected_rate: float | None):
    """(start unix s, rate, samples [n, ncols]) of one E4 CSV: start row, rate row, samples."""
    import pandas as pd

    if not path.is_file():
        raise DataError(path, "missing file")
    if path.stat().st_size == 0:
        raise DataError(path, "empty file")
    with as_data_error(path):
        try:
            arr = pd.read_csv(path, header=None, skipinitialspace=True, dtype=np.float64).to_numpy()
        except pd.errors.EmptyDataError:
            raise DataError(path, "empty file (blank lines only)") from None
        except ValueError as e:  # locate the unparseable cell (slow path, errors only)
            if isinstance(e, pd.errors.ParserError):
                raise
            cells = pd.read_csv(path, header=None, skipinitialspace=True, dtype=str)
            for (row, col), value in np.ndenumerate(cells.to_numpy()):
                if isinstance(value, str) and not is_number(value):
                    raise DataError(
                        path,
                        f"line {row + 1}, column {col + 1}: cannot parse {value!r} as a number",
                    ) from e
            raise
    if arr.shape[1] != ncols:
        raise DataError(path, f"{arr.shape[1]} columns, expected {ncols}")
    if arr.shape[0] < 2:
        raise DataError(path, "truncated: expected a start-time row and a sampling-rate row")
    head = arr[:2]
    if not (np.isfinite(head).all() and (head == head[:, :1]).all()):
        raise DataError(
            path, f"start-time/rate rows are missing or disagree across columns: {head.tolist()}"
        )
    start, rate = float(head[0, 0]), float(head[1, 0])
    if not UNIX_MIN <= start <= UNIX_MAX:
        raise DataError(path, f"first row {start:g} is not a unix start time (2000-2100)")
    if expected_rate is not None and rate != expected_rate:
        raise DataError(
            path,
            f"sampling-rate row says {rate:g} Hz; an Empatica E4 writes "
            f"{expected_rate:g} Hz in {path.name}",
        )
    if not rate > 0:
        raise DataError(path, f"sampling-rate row says {rate:g} Hz")
    values = arr[2:]
    if len(values) == 0:
        raise DataError(path, "no samples after the start-time and rate rows")
    check_finite(path, values, lambda r: f"line {r + 3}", "value (empty field or truncated row)")
    return start, rate, values


def read_e4_session(folder, participant=None, recording=None) -> Recording:
    """An Empatica E4 export folder -> Recording (BVP at 64 Hz, accelerometer in g at 32 Hz).

    signal is BVP `[time, 1]` (channel "bvp"; the E4's own arbitrary units), accel is ACC
    `[time, 3]` converted from 1/64 g to g, start_time is BVP's first row (unix s, UTC).
    participant and recording default to the folder name. The first ~11 BVP samples of a
    session are exactly 0 (device warm-up); they are kept here, as recorded, and left to the
    quality checks downstream. BVP and ACC must start together (within one ACC sample) and
    last as long (within 5 s + 0.5%: the E4 stops its streams a second or two apart).
    HR.csv, IBI.csv and tags are read by `read_e4_extras`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a folder")
    b_start, b_rate, bvp = _read_e4_csv(folder / "BVP.csv", 1, E4_BVP_RATE)
    a_start, a_rate, acc = _read_e4_csv(folder / "ACC.csv", 3, E4_ACC_RATE)
    if abs(b_start - a_start) > 1 / a_rate:
        raise DataError(folder, f"BVP.csv starts at {b_start} but ACC.csv at {a_start}")
    b_dur, a_dur = len(bvp) / b_rate, len(acc) / a_rate
    if abs(b_dur - a_dur) > 5 + 0.005 * max(b_dur, a_dur):
        raise DataError(
            folder, f"mismatched lengths: BVP.csv lasts {b_dur:.1f} s, ACC.csv {a_dur:.1f} s"
        )
    return Recording(
        participant=str(participant) if participant is not None else folder.name,
        recording=str(recording) if recording is not None else folder.name,
        signal=bvp,
        sample_rate=b_rate,
        source=str(folder),
        channels=("bvp",),
        start_time=b_start,
        accel=acc / E4_ACC_UNITS_PER_G,
        accel_rate=a_rate,
    )


def read_e4_extras(folder) -> dict:
    """The optional files of an E4 export: device heart rate, beat intervals, tags.

    Returns {"hr": bpm array or None, "hr_rate": Hz, "hr_start": unix s, "ibi": [n, 2] array
    (seconds from ibi_start, interval in s) or None, "ibi_start": unix s, "tags": list of unix
    s (button presses, from `tags.csv` or `tags_*.csv`; an empty file means no presses)}.
    """
    import pandas as pd

    folder = Path(folder)
    out = {
        "hr": None,
        "hr_rate": math.nan,
        "hr_start": math.nan,
        "ibi": None,
        "ibi_start": math.nan,
        "tags": [],
    }
    if (folder / "HR.csv").is_file():
        out["hr_start"], out["hr_rate"], hr = _read_e4_csv(folder / "HR.csv", 1, None)
        out["hr"] = hr[:, 0]
    ibi_path = folder / "IBI.csv"
    if ibi_path.is_file():
        with as_data_error(ibi_path):
            with open(ibi_path, encoding="utf-8") as f:
                first = f.readline().split(",")[0].strip()
            if not is_number(first) or not UNIX_MIN <= float(first) <= UNIX_MAX:
                raise DataError(ibi_path, f"first row should start with a unix time, got {first!r}")
            try:
                ibi = pd.read_csv(
                    ibi_path, header=None, skiprows=1, skipinitialspace=True, dtype=np.float64
                ).to_numpy()
            except pd.errors.EmptyDataError:  # no beats detected
                ibi = np.zeros((0, 2))
            if ibi.shape[1] != 2:
                raise DataError(ibi_path, f"{ibi.shape[1]} columns, expected 2 (time, IBI)")
            check_finite(ibi_path, ibi, lambda r: f"line {r + 2}")
        out["ibi_start"], out["ibi"] = float(first), ibi
    tag_files = sorted(folder.glob("tags*.csv"))
    if len(tag_files) > 1:
        raise DataError(folder, f"several tag files {[p.name for p in tag_files]}")
    if tag_files:
        path = tag_files[0]
        with as_data_error(path):
            try:
                tags = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
            except pd.errors.EmptyDataError:
                tags = np.zeros((0, 1))
        if tags.shape[1] != 1:
            raise DataError(path, f"{tags.shape[1]} columns, expected one unix time per row")
        tags = tags[:, 0]
        bad = ~((tags >= UNIX_MIN) & (tags <= UNIX_MAX))
        if bad.any():
            raise DataError(
                path, f"line {int(np.argmax(bad)) + 1}: {tags[bad][0]!r} is not a unix time"
            )
        out["tags"] = [float(t) for t in tags]
    return out
