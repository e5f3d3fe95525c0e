"""Clinical and PhysioNet formats: WFDB records and EDF/BDF files, in physical units."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ahms_fm.data.readers.common import agree_rate, check_finite, select_channels, utc
from ahms_fm.data.recording import DataError, Recording

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

_CLOCK = re.compile(r"\d{1,2}:\d{2}:\d{2}(\.\d+)?")


def read_wfdb(hea: Path, channels=None, sample_rate=None) -> tuple[np.ndarray, float, list, float]:
    """(physical signal, rate, channel names, start time) of a single-segment WFDB record."""
    import wfdb

    text = hea.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataError(hea, "empty header: no record line")
    tokens = lines[0].split()
    if len(tokens) < 2 or not tokens[1].isdigit():
        raise DataError(hea, f"bad record line {lines[0]!r}: expected 'name nsig fs nsamp ...'")
    signal_lines = [] if "/" in tokens[0] else lines[1 : 1 + int(tokens[1])]  # not multi-segment
    data_files = [ln.split()[0] for ln in signal_lines]
    for name in data_files:
        if not (hea.parent / name).is_file():
            raise DataError(hea.parent / name, f"data file named in {hea.name} is missing")
    try:
        if len(tokens) >= 6 and _ISO_DATE.fullmatch(tokens[4]) and _CLOCK.fullmatch(tokens[5]):
            # Quirk (CinC 2017): 'YYYY-MM-DD HH:MM:SS' where WFDB wants 'HH:MM:SS DD/MM/YYYY'.
            # wfdb.rdheader rejects it and takes header text only from a file, so we read a
            # copy of the header without the date/time, next to links to the data files.
            start = utc(dt.datetime.fromisoformat(f"{tokens[4]} {tokens[5]}"))
            record = _rdrecord_sanitized(hea, text, lines, tokens, data_files)
        else:
            record = wfdb.rdrecord(str(hea.with_suffix("")))
            start = utc(record.base_datetime) if record.base_date is not None else math.nan
    except ValueError as e:
        if "not loaded correctly" not in str(e):
            raise
        raise DataError(
            hea, f"data file {data_files} holds fewer samples than the header says (truncated?)"
        ) from e
    if record.p_signal is None or record.n_sig == 0:
        raise DataError(hea, "record has no signals")
    spf = list(record.samps_per_frame or [1])
    if any(s != 1 for s in spf):
        raise DataError(
            hea, f"channels are sampled at different rates (samples per frame {spf}); not supported"
        )
    names = [str(n) for n in record.sig_name]
    idx = channel_indices(hea, names, channels)
    signal = np.asarray(record.p_signal, dtype=np.float64)[:, idx]
    if signal.shape[0] == 0:
        raise DataError(hea, "record has no samples")
    check_finite(hea, signal, lambda r: f"sample {r}", "sample (WFDB 'invalid' code)")
    rate = agree_rate(hea, float(record.fs), sample_rate, "header")
    return signal, rate, [names[i] for i in idx], start


def channel_indices(path, names: list[str], channels) -> list[int]:
    """Indices of the selected channels, by name or index (all where none are selected)."""
    return select_channels(path, names, channels, len(names))


def _rdrecord_sanitized(
    hea: Path, text: str, lines: list[str], tokens: list[str], data_files: list[str]
):
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


def read_edf(path: Path, sample_rate, channels, participant, recording) -> Recording:
    import pyedflib

    with pyedflib.EdfReader(str(path)) as f:
        labels = [label.strip() for label in f.getSignalLabels()]
        if not labels:
            raise DataError(path, "no signals in the file")
        idx = channel_indices(path, labels, channels)
        rates = {labels[i]: float(f.getSampleFrequency(i)) for i in idx}
        if len(set(rates.values())) > 1:
            raise DataError(
                path,
                f"channels have different sampling rates {rates}; select channels that share one",
            )
        lengths = {int(f.getNSamples()[i]) for i in idx}
        if len(lengths) > 1 or 0 in lengths:
            raise DataError(path, f"channels have sample counts {sorted(lengths)}")
        signal = np.stack([f.readSignal(i) for i in idx], axis=1).astype(np.float64)
        start = utc(f.getStartdatetime())
    check_finite(path, signal, lambda r: f"sample {r}")
    rate = agree_rate(path, next(iter(rates.values())), sample_rate, "EDF header")
    return Recording(
        participant, recording, signal, rate, str(path), tuple(labels[i] for i in idx), start
    )
