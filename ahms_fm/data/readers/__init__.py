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

Modules: `common` (errors and checks), `tables` (participant tables), `tabular` (CSV,
Parquet), `arrays` (NumPy), `physionet` (WFDB, EDF), `e4` (Empatica exports), `files`
(`read_file`: any of them by extension), `byo` (`ByoSpec`, `scan_folder`).
"""

from ahms_fm.data.readers.byo import ByoSpec, header_table, scan_folder
from ahms_fm.data.readers.e4 import E4_ACC_RATE, E4_BVP_RATE, read_e4_extras, read_e4_session
from ahms_fm.data.readers.files import read_file
from ahms_fm.data.readers.tables import read_participants_csv
from ahms_fm.data.recording import DataError

__all__ = [  # noqa: RUF022 (grouped by kind, not sorted)
    "ByoSpec",
    "read_file",
    "read_participants_csv",
    "scan_folder",
    "header_table",  # BYO
    "read_e4_extras",
    "read_e4_session",
    "E4_BVP_RATE",
    "E4_ACC_RATE",  # Empatica E4
    "DataError",
]
