"""Readers: recordings on disk -> `Recording` objects, plus participant label tables.

Signals come back at their native rate as `[time, channels]` float64, in the file's physical
units where the file gives them (raw ADC counts otherwise). Nothing here resamples, filters or
windows; preprocessing does that. Any problem with a file raises `DataError(path, problem)`
naming the file and what is wrong (empty, truncated, bad header, NaN/Inf, unparseable numbers,
missing or inconsistent sampling rate, mismatched lengths); library exceptions are converted.

The public datasets' own layouts are in `ahms_fm.data.public`.

Errors during scans. The functions that walk many files (`scan_folder`, and the public
datasets' readers) are lazy and take `on_error="raise" | "skip"` and `errors`: with
"skip", a bad file yields nothing and `(path, problem)` is appended to the caller's `errors` list,
so an ingestion run can report every bad file by name at the end. Problems with the dataset as a
whole (missing folder, unreadable label table) always raise.

Time zones. WFDB and EDF store wall-clock start times without a zone; they are read as UTC.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from absl import logging

from ahms_fm.data.recording import DataError, Recording

__all__ = [  # noqa: RUF022 (grouped by kind, not sorted)
    "ByoSpec", "read_file", "read_participants_csv", "scan_folder",  # bring your own
    "read_e4_extras", "read_e4_session",  # Empatica E4
]

E4_BVP_RATE = 64.0
E4_ACC_RATE = 32.0
E4_ACC_UNITS_PER_G = 64.0  # ACC.csv counts are 1/64 g (range +-2 g)
_UNIX_MIN, _UNIX_MAX = 946_684_800.0, 4_102_444_800.0  # 2000-01-01 .. 2100-01-01 (UTC)
_MISSING = {"", "na", "n/a", "nan", "null", "none"}
_TRUE = {"yes", "y", "true", "t", "1"}
_FALSE = {"no", "n", "false", "f", "0"}


# ---------------------------------------------------------------------------------------------
# Error handling and small checks
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _as_data_error(path, what: str = "cannot read"):
    """Re-raise anything a library throws as a DataError naming `path`."""
    try:
        yield
    except DataError:
        raise
    except Exception as e:  # any library failure becomes a named DataError
        raise DataError(path, f"{what}: {type(e).__name__}: {e}") from e


def _check_policy(on_error: str, errors: list | None) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if on_error == "skip" and errors is None:
        raise ValueError("on_error='skip' needs an `errors` list to record (path, problem) in")


def _attempt(fn: Callable, on_error: str, errors: list | None):
    """fn() or, under on_error='skip', None with the DataError recorded in `errors`."""
    try:
        return fn()
    except DataError as e:
        if on_error == "raise":
            raise
        errors.append((e.path, e.problem))
        return None


def _check_finite(path, values: np.ndarray, where: Callable[[int], str], what: str = "value"):
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        kind = "NaN/missing" if np.isnan(values[bad]).any() else "infinite"
        raise DataError(path, f"{where(row)}: {kind} {what} ({int(bad.sum())} bad in all)")


def _agree(path, file_rate: float, given: float | None, what: str) -> float:
    """The file's rate, after checking it against the caller's where both exist."""
    if given is not None and abs(file_rate - given) > 1e-3 * given:
        raise DataError(path, f"sample_rate={given:g} Hz was given but the {what} says "
                              f"{file_rate:g} Hz")
    return float(file_rate)


def _utc(when: dt.datetime) -> float:
    """Unix seconds of a naive (zone-less) datetime taken as UTC."""
    return when.replace(tzinfo=dt.timezone.utc).timestamp()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_header(path: Path) -> list[str]:
    """Column names from a CSV's first line; checks it is a real header."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        first = f.readline()
    if not first.strip():
        raise DataError(path, "empty file (or blank first line where the header should be)")
    names = [n.strip() for n in next(csv.reader([first]))]
    if all(_is_number(n) for n in names if n):
        raise DataError(path, "no header row: the first line holds numbers, expected column "
                              "names (e.g. time,ppg)")
    if not all(names):
        raise DataError(path, f"empty column name in the header {names}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(path, f"duplicate column names in the header: {dupes}")
    return names


# ---------------------------------------------------------------------------------------------
# Participant tables
# ---------------------------------------------------------------------------------------------


def _parse_column(values: list[str]) -> list:
    """One label column: numbers, booleans or strings; missing -> NaN (numbers) / None."""
    present = [v for v in values if v.lower() not in _MISSING]
    if present and all(_is_number(v) for v in present):
        ints = all(re.fullmatch(r"[+-]?\d+", v) for v in present)
        return [math.nan if v.lower() in _MISSING else int(v) if ints else float(v)
                for v in values]
    if present and all(v.lower() in _TRUE | _FALSE for v in present):
        return [None if v.lower() in _MISSING else v.lower() in _TRUE for v in values]
    return [None if v.lower() in _MISSING else v for v in values]


def read_participants_csv(path, id_column: str = "participant") -> dict[str, dict]:
    """`{participant id: {column: value}}` from a CSV with a header row.

    Each column is typed as a whole: all numbers -> int/float (missing -> NaN); all of
    yes/no/true/false/y/n/t/f (0/1 allowed among them) -> bool (missing -> None); otherwise
    strings (missing -> None). A column of only 0/1 stays numeric 0/1 (sex coded 0/1, say).
    Missing means empty, NA, N/A, NaN, null or none. Duplicate or empty ids are errors.
    """
    import pandas as pd

    path = Path(path)
    with _as_data_error(path):
        if not path.is_file():
            raise DataError(path, "no such file")
        names = _csv_header(path)
        if id_column not in names:
            raise DataError(path, f"no id column {id_column!r}; columns are {names}")
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                         header=0, names=names)
    ids = [v.strip() for v in df[id_column]]
    columns = {c: _parse_column([v.strip() for v in df[c]]) for c in names if c != id_column}
    table, line_of = {}, {}
    for i, pid in enumerate(ids):
        if not pid:
            raise DataError(path, f"line {i + 2}: empty participant id")
        if pid in table:
            raise DataError(path, f"duplicate participant id {pid!r} (lines {line_of[pid]} "
                                  f"and {i + 2})")
        line_of[pid] = i + 2
        table[pid] = {c: vals[i] for c, vals in columns.items()}
    return table


# ---------------------------------------------------------------------------------------------
# Generic formats (bring your own): CSV, Parquet, NumPy, WFDB, EDF
# ---------------------------------------------------------------------------------------------


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
            raise DataError(path, f"{where(row)}, column {name!r}: cannot parse "
                                  f"{_shown(series.iloc[row])} as a number")
        series = parsed
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    _check_finite(path, values, lambda r: f"{where(r)}, column {name!r}")
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
        raise DataError(path, f"time column is not uniform: {where(i)} is at {t[i]} s, "
                              f"expected {t[0] + i / rate} s at {rate:g} Hz (a gap or jitter "
                              "over half a sample)")
    return rate


def _columns_to_recording(path, columns: dict, where, sample_rate, channels, participant,
                          recording) -> Recording:
    """Shared by CSV and Parquet: pick channels, find the rate, build the Recording."""
    names = list(columns)
    time_name = next((n for n in names if n.strip().lower() == "time"), None)
    chosen = list(channels) if channels else [n for n in names if n != time_name]
    missing = [c for c in chosen if c not in columns]
    if missing:
        raise DataError(path, f"no column(s) {missing}; columns are {names}")
    if not chosen:
        raise DataError(path, "no signal columns (only a time column)")
    signal = np.stack([_numeric_column(path, c, columns[c], where) for c in chosen], axis=1)
    start = math.nan
    if time_name is not None:
        t = _numeric_column(path, time_name, columns[time_name], where)
        rate = _agree(path, _rate_from_time(path, t, where), sample_rate, "time column")
        if t[0] > _UNIX_MIN:  # absolute unix times rather than seconds from the start
            start = float(t[0])
    elif sample_rate is None:
        raise DataError(path, "no sampling rate: the file has no 'time' column and "
                              "sample_rate was not given")
    else:
        rate = sample_rate
    return Recording(participant, recording, signal, rate, str(path), tuple(chosen), start)


def _read_csv(path: Path, sample_rate, channels, participant, recording) -> Recording:
    import pandas as pd

    names = _csv_header(path)
    df = pd.read_csv(path, header=0, names=names, skipinitialspace=True, encoding="utf-8-sig",
                     low_memory=False)
    if len(df) == 0:
        raise DataError(path, "no samples (header only)")
    if _cut_mid_row(path, len(names)):
        logging.warning("%s: the file ends in the middle of line %d (no newline, a field "
                        "shorter than the line above): probably cut off, e.g. by an "
                        "interrupted copy; that line is dropped, and the recording may be "
                        "shorter than it should be", path, len(df) + 1)
        df = df.iloc[:-1]
        if len(df) == 0:
            raise DataError(path, "no complete samples (the only row is cut off)")
    columns = {n: df[n] for n in names}
    return _columns_to_recording(path, columns, lambda r: f"line {r + 2}", sample_rate,
                                 channels, participant, recording)


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
        return len(field.split(".", 1)[1]) if "." in field and _is_number(field) else -1

    return any(0 <= decimals(a) and decimals(b) < decimals(a)
               for a, b in zip(above, last, strict=False))


def _read_parquet(path: Path, sample_rate, channels, participant, recording) -> Recording:
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
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type) \
                or pa.types.is_boolean(col.type) or pa.types.is_decimal(col.type):
            columns[name] = col.to_pandas()
        else:
            columns[name] = _NonNumeric(name, col.type)
    return _columns_to_recording(path, columns, lambda r: f"row {r}", sample_rate, channels,
                                 participant, recording)


def _read_numpy(path: Path, sample_rate, channels, participant, recording) -> Recording:
    file_rate = None
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            arrays = [k for k in keys if k != "sample_rate"]
            if "signal" in keys:
                key = "signal"
            elif len(arrays) == 1:
                key = arrays[0]
            else:
                raise DataError(path, f"holds arrays {keys}; expected one array, or one "
                                      "named 'signal' (plus an optional 'sample_rate')")
            array = z[key]
            if "sample_rate" in keys:
                file_rate = float(np.asarray(z["sample_rate"]).reshape(()))
    else:
        array = np.load(path, allow_pickle=False)
    if array.dtype.kind not in "biuf":
        raise DataError(path, f"array dtype {array.dtype} is not real numbers")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(path, f"expected a non-empty [time, channels] array, got {array.shape}")
    if array.shape[1] > array.shape[0]:
        raise DataError(path, f"array is {array.shape}: more channels than samples; expected "
                              "[time, channels] (transpose it?)")
    signal = array.astype(np.float64)
    _check_finite(path, signal, lambda r: f"sample {r}")
    if file_rate is not None:
        rate = _agree(path, file_rate, sample_rate, "file's sample_rate")
    elif sample_rate is None:
        raise DataError(path, "no sampling rate: NumPy files carry none; pass sample_rate "
                              "(or store 'sample_rate' in the .npz)")
    else:
        rate = sample_rate
    if channels and len(channels) != signal.shape[1]:
        raise DataError(path, f"{len(channels)} channel names given for {signal.shape[1]} "
                              "columns")
    return Recording(participant, recording, signal, rate, str(path), tuple(channels or ()))


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CLOCK = re.compile(r"\d{1,2}:\d{2}:\d{2}(\.\d+)?")


def _read_wfdb(hea: Path, channels=None, sample_rate=None) -> tuple[np.ndarray, float, list,
                                                                    float]:
    """(physical signal, rate, channel names, start time) of a single-segment WFDB record."""
    import wfdb

    text = hea.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataError(hea, "empty header: no record line")
    tokens = lines[0].split()
    if len(tokens) < 2 or not tokens[1].isdigit():
        raise DataError(hea, f"bad record line {lines[0]!r}: expected 'name nsig fs nsamp ...'")
    signal_lines = [] if "/" in tokens[0] else lines[1:1 + int(tokens[1])]  # not multi-segment
    data_files = [ln.split()[0] for ln in signal_lines]
    for name in data_files:
        if not (hea.parent / name).is_file():
            raise DataError(hea.parent / name, f"data file named in {hea.name} is missing")
    try:
        if len(tokens) >= 6 and _ISO_DATE.fullmatch(tokens[4]) and _CLOCK.fullmatch(tokens[5]):
            # Quirk (CinC 2017): 'YYYY-MM-DD HH:MM:SS' where WFDB wants 'HH:MM:SS DD/MM/YYYY'.
            # wfdb.rdheader rejects it and takes header text only from a file, so we read a
            # copy of the header without the date/time, next to links to the data files.
            start = _utc(dt.datetime.fromisoformat(f"{tokens[4]} {tokens[5]}"))
            record = _rdrecord_sanitized(hea, text, lines, tokens, data_files)
        else:
            record = wfdb.rdrecord(str(hea.with_suffix("")))
            start = _utc(record.base_datetime) if record.base_date is not None else math.nan
    except ValueError as e:
        if "not loaded correctly" not in str(e):
            raise
        raise DataError(hea, f"data file {data_files} holds fewer samples than the header "
                             "says (truncated?)") from e
    if record.p_signal is None or record.n_sig == 0:
        raise DataError(hea, "record has no signals")
    spf = list(record.samps_per_frame or [1])
    if any(s != 1 for s in spf):
        raise DataError(hea, f"channels are sampled at different rates (samples per frame "
                             f"{spf}); not supported")
    names = [str(n) for n in record.sig_name]
    idx = _channel_indices(hea, names, channels)
    signal = np.asarray(record.p_signal, dtype=np.float64)[:, idx]
    if signal.shape[0] == 0:
        raise DataError(hea, "record has no samples")
    _check_finite(hea, signal, lambda r: f"sample {r}", "sample (WFDB 'invalid' code)")
    rate = _agree(hea, float(record.fs), sample_rate, "header")
    return signal, rate, [names[i] for i in idx], start


def _channel_indices(path, names: list[str], channels) -> list[int]:
    """Indices of the selected channel names (all where none are selected)."""
    if not channels:
        return list(range(len(names)))
    missing = [c for c in channels if c not in names]
    if missing:
        raise DataError(path, f"no channel(s) {missing}; channels are {names}")
    return [names.index(c) for c in channels]


def _rdrecord_sanitized(hea: Path, text: str, lines: list[str], tokens: list[str],
                        data_files: list[str]):
    import wfdb

    name = tokens[0]
    if "/" in name:
        raise DataError(hea, "multi-segment record with a non-standard date line: unsupported")
    out = text.replace(lines[0], " ".join(tokens[:4]), 1)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"{name}.hea").write_text(out, encoding="utf-8")
        for data in set(data_files):
            src, dst = hea.parent / data, Path(tmp) / data
            try:
                os.symlink(src.resolve(), dst)
            except OSError:  # no symlinks (some Windows setups): copy instead
                shutil.copyfile(src, dst)
        return wfdb.rdrecord(str(Path(tmp) / name))


def _read_edf(path: Path, sample_rate, channels, participant, recording) -> Recording:
    import pyedflib

    with pyedflib.EdfReader(str(path)) as f:
        labels = [label.strip() for label in f.getSignalLabels()]
        if not labels:
            raise DataError(path, "no signals in the file")
        idx = _channel_indices(path, labels, channels)
        rates = {labels[i]: float(f.getSampleFrequency(i)) for i in idx}
        if len(set(rates.values())) > 1:
            raise DataError(path, f"channels have different sampling rates {rates}; select "
                                  "channels that share one")
        lengths = {int(f.getNSamples()[i]) for i in idx}
        if len(lengths) > 1 or 0 in lengths:
            raise DataError(path, f"channels have sample counts {sorted(lengths)}")
        signal = np.stack([f.readSignal(i) for i in idx], axis=1).astype(np.float64)
        start = _utc(f.getStartdatetime())
    _check_finite(path, signal, lambda r: f"sample {r}")
    rate = _agree(path, next(iter(rates.values())), sample_rate, "EDF header")
    return Recording(participant, recording, signal, rate, str(path),
                     tuple(labels[i] for i in idx), start)


def read_file(path, sample_rate: float | None = None, channels=None, participant=None,
              recording=None) -> Recording:
    """One recording from a file (or an Empatica E4 export folder), by its extension.

    - `.csv`: a header row of column names; an optional `time` column (seconds, uniform;
      the rate is inferred from it, and it sets start_time where it holds unix times) or
      `sample_rate`. Every other column is a channel unless `channels` picks some.
    - `.parquet` / `.pq`: like CSV (a timestamp-typed time column is allowed).
    - `.npy` / `.npz`: an array `[time, channels]`; `sample_rate` is required unless the
      .npz holds a scalar `sample_rate` next to its array (one array, or one named
      `signal`). Here `channels` names the columns instead of selecting them.
    - WFDB: the `.hea` (or its `.dat`/`.mat`); physical units; `channels` picks signals by
      name.
    - `.edf` / `.bdf` (pyedflib): physical units; `channels` picks signals by label; the
      chosen ones must share one rate.
    - a folder holding `BVP.csv`: an Empatica E4 export (`read_e4_session`).

    Where the file states a rate and `sample_rate` is also given, they must agree (0.1%).
    participant and recording default to the file stem (one file = one participant).
    """
    path = Path(path)
    if sample_rate is not None and not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number, got {sample_rate!r}")
    if isinstance(channels, str):
        channels = (channels,)
    channels = tuple(channels) if channels else None
    participant = str(participant) if participant is not None else path.stem
    recording = str(recording) if recording is not None else path.stem
    with _as_data_error(path):
        if path.is_dir():
            if not (path / "BVP.csv").is_file():
                raise DataError(path, "folder is not an Empatica E4 export (no BVP.csv)")
            if channels not in (None, ("bvp",)):
                raise DataError(path, f"an E4 export has only the 'bvp' channel, not {channels}")
            rec = read_e4_session(path, participant, recording)
            _agree(path, rec.sample_rate, sample_rate, "E4 export")
            return rec
        if not path.is_file():
            raise DataError(path, "no such file")
        if path.stat().st_size == 0:
            raise DataError(path, "empty file")
        suffix = path.suffix.lower()
        args = (path, sample_rate, channels, participant, recording)
        if suffix == ".csv":
            return _read_csv(*args)
        if suffix in (".parquet", ".pq"):
            return _read_parquet(*args)
        if suffix in (".npy", ".npz"):
            return _read_numpy(*args)
        if suffix in (".edf", ".bdf"):
            return _read_edf(*args)
        if suffix == ".hea" or (suffix in (".dat", ".mat") and path.with_suffix(".hea").exists()):
            hea = path.with_suffix(".hea")
            signal, rate, names, start = _read_wfdb(hea, channels, sample_rate)
            return Recording(participant, recording, signal, rate, str(hea), tuple(names), start)
        raise DataError(path, f"unsupported file type {suffix!r} (csv, parquet, npy, npz, "
                              "WFDB .hea, edf, bdf, or an E4 export folder)")


# ---------------------------------------------------------------------------------------------
# Empatica E4 exports
# ---------------------------------------------------------------------------------------------


def _read_e4_csv(path: Path, ncols: int, expected_rate: float | None):
    """(start unix s, rate, samples [n, ncols]) of one E4 CSV: start row, rate row, samples."""
    import pandas as pd

    if not path.is_file():
        raise DataError(path, "missing file")
    if path.stat().st_size == 0:
        raise DataError(path, "empty file")
    with _as_data_error(path):
        try:
            arr = pd.read_csv(path, header=None, skipinitialspace=True,
                              dtype=np.float64).to_numpy()
        except pd.errors.EmptyDataError:
            raise DataError(path, "empty file (blank lines only)") from None
        except ValueError as e:  # locate the unparseable cell (slow path, errors only)
            if isinstance(e, pd.errors.ParserError):
                raise
            cells = pd.read_csv(path, header=None, skipinitialspace=True, dtype=str)
            for (row, col), value in np.ndenumerate(cells.to_numpy()):
                if isinstance(value, str) and not _is_number(value):
                    raise DataError(path, f"line {row + 1}, column {col + 1}: cannot parse "
                                          f"{value!r} as a number") from e
            raise
    if arr.shape[1] != ncols:
        raise DataError(path, f"{arr.shape[1]} columns, expected {ncols}")
    if arr.shape[0] < 2:
        raise DataError(path, "truncated: expected a start-time row and a sampling-rate row")
    head = arr[:2]
    if not (np.isfinite(head).all() and (head == head[:, :1]).all()):
        raise DataError(path, f"start-time/rate rows are missing or disagree across columns: "
                              f"{head.tolist()}")
    start, rate = float(head[0, 0]), float(head[1, 0])
    if not _UNIX_MIN <= start <= _UNIX_MAX:
        raise DataError(path, f"first row {start:g} is not a unix start time (2000-2100)")
    if expected_rate is not None and rate != expected_rate:
        raise DataError(path, f"sampling-rate row says {rate:g} Hz; an Empatica E4 writes "
                              f"{expected_rate:g} Hz in {path.name}")
    if not rate > 0:
        raise DataError(path, f"sampling-rate row says {rate:g} Hz")
    values = arr[2:]
    if len(values) == 0:
        raise DataError(path, "no samples after the start-time and rate rows")
    _check_finite(path, values, lambda r: f"line {r + 3}", "value (empty field or truncated row)")
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
        raise DataError(folder, f"mismatched lengths: BVP.csv lasts {b_dur:.1f} s, ACC.csv "
                                f"{a_dur:.1f} s")
    return Recording(
        participant=str(participant) if participant is not None else folder.name,
        recording=str(recording) if recording is not None else folder.name,
        signal=bvp, sample_rate=b_rate, source=str(folder), channels=("bvp",),
        start_time=b_start, accel=acc / E4_ACC_UNITS_PER_G, accel_rate=a_rate)


def read_e4_extras(folder) -> dict:
    """The optional files of an E4 export: device heart rate, beat intervals, tags.

    Returns {"hr": bpm array or None, "hr_rate": Hz, "hr_start": unix s, "ibi": [n, 2] array
    (seconds from ibi_start, interval in s) or None, "ibi_start": unix s, "tags": list of unix
    s (button presses, from `tags.csv` or `tags_*.csv`; an empty file means no presses)}.
    """
    import pandas as pd

    folder = Path(folder)
    out = {"hr": None, "hr_rate": math.nan, "hr_start": math.nan, "ibi": None,
           "ibi_start": math.nan, "tags": []}
    if (folder / "HR.csv").is_file():
        out["hr_start"], out["hr_rate"], hr = _read_e4_csv(folder / "HR.csv", 1, None)
        out["hr"] = hr[:, 0]
    ibi_path = folder / "IBI.csv"
    if ibi_path.is_file():
        with _as_data_error(ibi_path):
            with open(ibi_path, encoding="utf-8") as f:
                first = f.readline().split(",")[0].strip()
            if not _is_number(first) or not _UNIX_MIN <= float(first) <= _UNIX_MAX:
                raise DataError(ibi_path, f"first row should start with a unix time, got "
                                          f"{first!r}")
            try:
                ibi = pd.read_csv(ibi_path, header=None, skiprows=1, skipinitialspace=True,
                                  dtype=np.float64).to_numpy()
            except pd.errors.EmptyDataError:  # no beats detected
                ibi = np.zeros((0, 2))
            if ibi.shape[1] != 2:
                raise DataError(ibi_path, f"{ibi.shape[1]} columns, expected 2 (time, IBI)")
            _check_finite(ibi_path, ibi, lambda r: f"line {r + 2}")
        out["ibi_start"], out["ibi"] = float(first), ibi
    tag_files = sorted(folder.glob("tags*.csv"))
    if len(tag_files) > 1:
        raise DataError(folder, f"several tag files {[p.name for p in tag_files]}")
    if tag_files:
        path = tag_files[0]
        with _as_data_error(path):
            try:
                tags = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
            except pd.errors.EmptyDataError:
                tags = np.zeros((0, 1))
        if tags.shape[1] != 1:
            raise DataError(path, f"{tags.shape[1]} columns, expected one unix time per row")
        tags = tags[:, 0]
        bad = ~((tags >= _UNIX_MIN) & (tags <= _UNIX_MAX))
        if bad.any():
            raise DataError(path, f"line {int(np.argmax(bad)) + 1}: {tags[bad][0]!r} is not a "
                                  "unix time")
        out["tags"] = [float(t) for t in tags]
    return out


# ---------------------------------------------------------------------------------------------
# Bring-your-own cohorts
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ByoSpec:
    """How to read a bring-your-own cohort folder (`scan_folder`); JSON-loadable.

    pattern: glob relative to the cohort root picking one recording per match: files
      (`read_file` formats) or E4 export folders, e.g. "**/*.csv", "*/*.edf", "S*".
    participant_regex: regex searched in the match's path relative to the root (with "/"
      separators) with a named group `participant`, e.g. r"sub-(?P<participant>\\d+)/".
      None: the parent folder's name (for an E4 export folder, its own name).
    sample_rate: Hz, for files that carry none (NumPy, CSV without a time column); where a
      file states its rate the two must agree.
    channels: channel names to read (CSV/Parquet columns, WFDB/EDF signal labels); None: all.
    participants_csv: the label table, relative to the root (`read_participants_csv`); files
      whose participant is not in it are reported. None: no table.
    id_column: the table's participant id column.
    The recording id is the match's relative path without its extension.
    """

    pattern: str = "**/*.csv"
    participant_regex: str | None = None
    sample_rate: float | None = None
    channels: tuple[str, ...] | None = None
    participants_csv: str | None = "participants.csv"
    id_column: str = "participant"

    def __post_init__(self):
        if not self.pattern or not isinstance(self.pattern, str):
            raise ValueError("ByoSpec.pattern must be a non-empty glob")
        if self.participant_regex is not None:
            if "participant" not in re.compile(self.participant_regex).groupindex:
                raise ValueError(f"participant_regex {self.participant_regex!r} needs a named "
                                 "group (?P<participant>...)")
        if self.sample_rate is not None and not (math.isfinite(self.sample_rate)
                                                 and self.sample_rate > 0):
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate!r}")
        if self.channels is not None:
            chans = (self.channels,) if isinstance(self.channels, str) else self.channels
            object.__setattr__(self, "channels", tuple(str(c) for c in chans))

    @classmethod
    def from_dict(cls, d: dict) -> ByoSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ByoSpec keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path) -> ByoSpec:
        with _as_data_error(path, "cannot read the cohort spec"):
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(d, dict):
                raise DataError(path, "the cohort spec must be a JSON object")
            return cls.from_dict(d)


def _participant_of(path: Path, root: Path, spec: ByoSpec) -> str:
    rel = path.relative_to(root).as_posix()
    if spec.participant_regex is not None:
        m = re.search(spec.participant_regex, rel)
        if m is None or not m["participant"]:
            raise DataError(path, f"participant_regex {spec.participant_regex!r} does not match "
                                  f"{rel!r}")
        return m["participant"]
    if path.is_dir():
        return path.name
    if path.parent == root:
        raise DataError(path, "file sits in the cohort root, so it has no participant folder; "
                              "set participant_regex")
    return path.parent.name


def _raise(path, problem: str):
    raise DataError(path, problem)


def _one_file_per_recording(paths: list[Path], root: Path) -> list[Path]:
    """The files to read, one per recording: a WFDB record is its `.hea` (the header names
    its signal files, which `*` patterns also match); two files with one recording id
    (`rec.csv` beside `rec.npy`) or one file reached twice (links) are refused."""
    by_id: dict[str, list[Path]] = {}
    for p in paths:
        by_id.setdefault(p.relative_to(root).with_suffix("").as_posix(), []).append(p)
    out, seen = [], {}
    for rec_id, group in by_id.items():
        headers = [p for p in group if p.suffix.lower() == ".hea"]
        group = headers or group
        if len(group) > 1:
            raise DataError(root, f"recording {rec_id!r} is given by {len(group)} files ("
                            f"{', '.join(p.name for p in group)}): keep one, or narrow the "
                            "spec's pattern")
        real = group[0].resolve()
        if real in seen:
            raise DataError(group[0], f"is the same file as {seen[real]} (a link): one "
                            "recording would be read twice")
        seen[real] = group[0]
        out.append(group[0])
    return out


def scan_folder(root, spec: ByoSpec | dict, on_error: str = "raise",
                errors: list | None = None, only=None) -> Iterator[Recording]:
    """Lazily read every recording of a bring-your-own cohort described by `spec`.

    The root, the spec, the participants table and the file listing are checked now (and
    raise); each file is read when iterated, its problems handled by on_error/errors, like a
    participant missing from the table. With `only` (a set of participant ids), files of
    other participants are passed over without being read.
    """
    _check_policy(on_error, errors)
    spec = spec if isinstance(spec, ByoSpec) else ByoSpec.from_dict(spec)
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "cohort root is not a folder")
    table_path, known = None, None
    if spec.participants_csv is not None:
        table_path = root / spec.participants_csv
        if not table_path.is_file():
            raise DataError(table_path, "participants table named in the spec is missing (set "
                                        "participants_csv to None for an unlabelled cohort)")
        known = read_participants_csv(table_path, spec.id_column)
    matched = sorted(root.glob(spec.pattern))
    for link in (p for p in matched if p.is_symlink() and not p.exists()):
        _attempt(lambda p=link: _raise(p, "a symbolic link to nothing (or to itself)"),
                 on_error, errors)
    paths = _one_file_per_recording(
        [p for p in matched if (p.is_file() or (p / "BVP.csv").is_file())
         and (table_path is None or p.resolve() != table_path.resolve())], root)
    if not paths:
        raise DataError(root, f"no recordings match {spec.pattern!r}")

    def read(path: Path) -> Recording:
        pid = _participant_of(path, root, spec)
        if known is not None and pid not in known:
            raise DataError(path, f"participant {pid!r} is not in {table_path.name}")
        rec_id = path.relative_to(root).with_suffix("").as_posix()
        return read_file(path, spec.sample_rate, spec.channels, pid, rec_id)

    def wanted(path: Path) -> bool:
        if only is None:
            return True
        pid = _attempt(lambda: _participant_of(path, root, spec), on_error, errors)
        return pid is not None and (pid in only or (known is not None and pid not in known))

    def recordings():
        for path in filter(wanted, paths):
            rec = _attempt(lambda p=path: read(p), on_error, errors)
            if rec is not None:
                yield rec

    return recordings()
