"""One recording from one file, whatever its format (`read_file`)."""

from __future__ import annotations

import math
from pathlib import Path

from ahms_fm.data.readers.arrays import read_array_file
from ahms_fm.data.readers.common import agree_rate, as_data_error
from ahms_fm.data.readers.e4 import read_e4_session
from ahms_fm.data.readers.physionet import read_edf, read_wfdb
from ahms_fm.data.readers.tabular import read_csv, read_parquet
from ahms_fm.data.recording import DataError, Recording


def read_file(
    path,
    sample_rate: float | None = None,
    channels=None,
    participant=None,
    recording=None,
    *,
    key: str | None = None,
    orientation: str = "auto",
    channel_names=None,
    rate_key: str | None = None,
) -> Recording:
    """One recording from a file (or an Empatica E4 export folder), by its extension.

    - `.csv`: a header row of column names; an optional `time` column (seconds, uniform;
      the rate is inferred from it, and it sets start_time where it holds unix times) or
      `sample_rate`. Every other column is a channel unless `channels` picks some.
    - `.parquet` / `.pq`: like CSV (a timestamp-typed time column is allowed).
    - `.npy` / `.npz` / `.mat` (MATLAB v4, v5, v7.3) without a `.hea` beside it: an array
      (`key` names it in .npz/.mat), `[time, channels]` or `[channels, time]`
      (`orientation`: "auto" puts time on the longer axis), unnamed columns unless
      `channel_names` names them; the rate from `sample_rate` or a scalar in the file
      (`rate_key`, else sample_rate/fs/Fs/sampling_rate/srate). `readers.arrays`.
    - WFDB: the `.hea` (or its `.dat`/`.mat`); physical units.
    - `.edf` / `.bdf` (pyedflib): physical units; the chosen channels must share one rate.
    - a folder holding `BVP.csv`: an Empatica E4 export (`read_e4_session`).

    `channels` picks channels in every format: by name (CSV/Parquet columns, WFDB/EDF
    signal names, `channel_names`) or by index (0 = the first signal column). Where the
    file states a rate and `sample_rate` is also given, they must agree (0.1%).
    participant and recording default to the file stem (one file = one participant).
    """
    path = Path(path)
    if sample_rate is not None and not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number, got {sample_rate!r}")
    if isinstance(channels, (str, int)):
        channels = (channels,)
    channels = tuple(channels) if channels else None
    participant = str(participant) if participant is not None else path.stem
    recording = str(recording) if recording is not None else path.stem
    with as_data_error(path):
        if path.is_dir():
            if not (path / "BVP.csv").is_file():
                raise DataError(path, "folder is not an Empatica E4 export (no BVP.csv)")
            if channels not in (None, ("bvp",)):
                raise DataError(path, f"an E4 export has only the 'bvp' channel, not {channels}")
            rec = read_e4_session(path, participant, recording)
            agree_rate(path, rec.sample_rate, sample_rate, "E4 export")
            return rec
        if not path.is_file():
            raise DataError(path, "no such file")
        if path.stat().st_size == 0:
            raise DataError(path, "empty file")
        suffix = path.suffix.lower()
        args = (path, sample_rate, channels, participant, recording)
        is_wfdb = suffix == ".hea" or (
            suffix in (".dat", ".mat") and path.with_suffix(".hea").exists()
        )
        array_options = {
            "key": key,
            "orientation": orientation,
            "channel_names": channel_names,
            "rate_key": rate_key,
        }
        if suffix in (".npy", ".npz", ".mat") and not is_wfdb:
            return read_array_file(*args, **array_options)
        given = [k for k, v in array_options.items() if v not in (None, "auto")]
        if given:
            raise DataError(
                path,
                f"{given} apply to array files (.npy, .npz, .mat) only; "
                f"a {suffix} file names its own channels and rate",
            )
        if suffix == ".csv":
            return read_csv(*args)
        if suffix in (".parquet", ".pq"):
            return read_parquet(*args)
        if suffix in (".edf", ".bdf"):
            return read_edf(*args)
        if is_wfdb:
            hea = path.with_suffix(".hea")
            signal, rate, names, start = read_wfdb(hea, channels, sample_rate)
            return Recording(participant, recording, signal, rate, str(hea), tuple(names), start)
        raise DataError(
            path,
            f"unsupported file type {suffix!r} (csv, parquet, npy, npz, "
            "mat, WFDB .hea, edf, bdf, or an E4 export folder)",
        )
