"""One recording from one file, whatever its format (`read_file`)."""

from __future__ import annotations

import math
from pathlib import Path

from ahms_fm.data.readers.arrays import read_numpy
from ahms_fm.data.readers.common import agree_rate, as_data_error
from ahms_fm.data.readers.e4 import read_e4_session
from ahms_fm.data.readers.physionet import read_edf, read_wfdb
from ahms_fm.data.readers.tabular import read_csv, read_parquet
from ahms_fm.data.recording import DataError, Recording


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
        if suffix == ".csv":
            return read_csv(*args)
        if suffix in (".parquet", ".pq"):
            return read_parquet(*args)
        if suffix in (".npy", ".npz"):
            return read_numpy(*args)
        if suffix in (".edf", ".bdf"):
            return read_edf(*args)
        if suffix == ".hea" or (suffix in (".dat", ".mat") and path.with_suffix(".hea").exists()):
            hea = path.with_suffix(".hea")
            signal, rate, names, start = read_wfdb(hea, channels, sample_rate)
            return Recording(participant, recording, signal, rate, str(hea), tuple(names), start)
        raise DataError(path, f"unsupported file type {suffix!r} (csv, parquet, npy, npz, "
                              "WFDB .hea, edf, bdf, or an E4 export folder)")
