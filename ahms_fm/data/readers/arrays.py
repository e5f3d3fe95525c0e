"""Array files: NumPy `.npy` / `.npz` and MATLAB `.mat` (v4 and v5 through SciPy, v7.3
through h5py).

An array file holds numbers without names: which array (`key`), which axis is time
(`orientation`), what the columns are called (`channel_names`) and which of them to keep
(`channels`, by name or by index) come from the caller, and the rate from the caller or
from a scalar in the file (`rate_key`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ahms_fm.data.readers.common import agree_rate, check_finite, select_channels
from ahms_fm.data.recording import DataError, Recording

ORIENTATIONS = ("auto", "time_first", "channels_first")
RATE_KEYS = ("sample_rate", "fs", "Fs", "sampling_rate", "srate")  # looked for by default
PREFERRED_KEYS = ("signal", "val", "data")  # chosen, in this order, among several arrays


def _mat_arrays(path: Path) -> dict[str, np.ndarray]:
    """The variables of a MATLAB file (v4/v5 by SciPy, v7.3 = HDF5 by h5py)."""
    import scipy.io

    with open(path, "rb") as f:
        head = f.read(128)
    if head[:8] == b"\x89HDF\r\n\x1a\n" or b"MATLAB 7.3" in head:
        try:
            import h5py
        except ImportError:  # pragma: no cover - h5py is a dependency
            raise DataError(
                path, "a MATLAB v7.3 (HDF5) file needs h5py: pip install h5py"
            ) from None
        out = {}
        with h5py.File(path, "r") as f:
            for name, item in f.items():
                if isinstance(item, h5py.Dataset) and not name.startswith("#"):
                    # MATLAB writes column-major: HDF5 holds the transpose of the array.
                    out[name] = np.asarray(item[()]).T
        return out
    try:
        loaded = scipy.io.loadmat(path, squeeze_me=False)
    except (ValueError, TypeError, OSError) as e:
        raise DataError(path, f"not a readable MATLAB file ({type(e).__name__}: {e})") from e
    return {k: v for k, v in loaded.items() if not k.startswith("__")}


def _pick(path: Path, arrays: dict, key: str | None, rate_key: str | None):
    """(array, its key, the file's rate or None)."""
    rate_keys = (rate_key,) if rate_key else RATE_KEYS
    file_rate = None
    for k in rate_keys:
        if k in arrays:
            value = np.asarray(arrays[k])
            if value.size != 1 or value.dtype.kind not in "biuf":
                raise DataError(
                    path,
                    f"{k!r} should be one number (the sampling rate in Hz), "
                    f"got {value.dtype} of shape {value.shape}",
                )
            file_rate = float(value.reshape(()))
            break
    else:
        if rate_key:
            raise DataError(path, f"no rate variable {rate_key!r}; variables are {sorted(arrays)}")
    candidates = {
        k: v
        for k, v in arrays.items()
        if k not in rate_keys
        and isinstance(v, np.ndarray)
        and v.dtype.kind in "biuf"
        and v.size > 1
    }
    if key is not None:
        if key not in arrays:
            raise DataError(path, f"no array {key!r}; the file holds {sorted(arrays)}")
        return np.asarray(arrays[key]), key, file_rate
    if len(candidates) == 1:
        key = next(iter(candidates))
    else:
        key = next((k for k in PREFERRED_KEYS if k in candidates), None)
        if key is None:
            raise DataError(
                path,
                f"holds arrays {sorted(candidates) or sorted(arrays)}; name "
                "the signal's with the spec's 'key' (or call it 'signal')",
            )
    return np.asarray(arrays[key]), key, file_rate


def _orient(path: Path, array: np.ndarray, key: str, orientation: str) -> np.ndarray:
    """`array` as [time, channels]."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    if array.dtype.kind not in "biuf":
        raise DataError(path, f"array {key!r} has dtype {array.dtype}, not real numbers")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or 0 in array.shape:
        raise DataError(
            path,
            f"array {key!r} has shape {array.shape}; expected a non-empty "
            "[time, channels] or [channels, time] array",
        )
    if orientation == "time_first" and array.shape[1] > array.shape[0]:
        raise DataError(
            path,
            f"array {key!r} is {array.shape}: more channels than samples "
            "as [time, channels]; transpose it, or set orientation to "
            "channels_first (or auto)",
        )
    if orientation == "channels_first" or (
        orientation == "auto" and array.shape[1] > array.shape[0]
    ):
        array = array.T  # time runs along the longer axis
    return array


def read_array_file(
    path: Path,
    sample_rate,
    channels,
    participant,
    recording,
    *,
    key: str | None = None,
    orientation: str = "auto",
    channel_names=None,
    rate_key: str | None = None,
) -> Recording:
    """A `.npy`, `.npz` or `.mat` file -> Recording (see the module docstring).

    `key`: the array's name (None: the file's only numeric array, else one called
    signal/val/data). `orientation`: "auto" (time along the longer axis), "time_first" or
    "channels_first". `channel_names`: a name per column. `channels`: the columns to keep,
    by name (needs names) or index; without `channel_names`, names given for every column
    name them all (the shorthand of earlier versions).
    """
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if key is not None:
            raise DataError(
                path,
                f"a .npy file holds one unnamed array; 'key' ({key!r}) is for .npz and .mat files",
            )
        arrays = {"array": np.load(path, allow_pickle=False)}
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        arrays = _mat_arrays(path)
    if not arrays:
        raise DataError(path, "holds no arrays")
    array, key, file_rate = _pick(path, arrays, key, rate_key)
    signal = _orient(path, array, key, orientation).astype(np.float64)
    check_finite(path, signal, lambda r: f"sample {r}")
    names = list(channel_names) if channel_names else None
    if names is not None and len(names) != signal.shape[1]:
        raise DataError(
            path,
            f"{len(names)} channel_names for {signal.shape[1]} columns of "
            f"array {key!r} (shape {signal.shape}, as [time, channels])",
        )
    if (
        names is None
        and channels
        and len(channels) == signal.shape[1]
        and all(isinstance(c, str) for c in channels)
    ):
        names, channels = list(channels), None
    idx = select_channels(path, names, channels, signal.shape[1])
    signal = signal[:, idx]
    if file_rate is not None:
        rate = agree_rate(path, file_rate, sample_rate, "file's rate variable")
    elif sample_rate is None:
        raise DataError(
            path,
            "no sampling rate: the file stores none (a scalar named one of "
            f"{list(RATE_KEYS)}); give sample_rate in the spec",
        )
    else:
        rate = sample_rate
    chosen = tuple(names[i] for i in idx) if names else ()
    return Recording(participant, recording, signal, rate, str(path), chosen)
