"""Array files: NumPy `.npy` / `.npz`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ahms_fm.data.readers.common import agree_rate, check_finite
from ahms_fm.data.recording import DataError, Recording


def read_numpy(path: Path, sample_rate, channels, participant, recording) -> Recording:
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
    check_finite(path, signal, lambda r: f"sample {r}")
    if file_rate is not None:
        rate = agree_rate(path, file_rate, sample_rate, "file's sample_rate")
    elif sample_rate is None:
        raise DataError(path, "no sampling rate: NumPy files carry none; pass sample_rate "
                              "(or store 'sample_rate' in the .npz)")
    else:
        rate = sample_rate
    if channels and len(channels) != signal.shape[1]:
        raise DataError(path, f"{len(channels)} channel names given for {signal.shape[1]} "
                              "columns")
    return Recording(participant, recording, signal, rate, str(path), tuple(channels or ()))
