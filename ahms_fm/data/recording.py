"""What every reader returns, and the error every reader raises."""

from __future__ import annotations

import dataclasses

import numpy as np


class DataError(ValueError):
    """Bad input data. The message always names the file or record and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclasses.dataclass
class Recording:
    """One continuous recording of one participant, at its native rate.

    `signal` is `[time, channels]` float64 in the file's physical units (or raw
    ADC counts where the file gives no gain); preprocessing resamples, filters
    and normalizes it. `accel`, where recorded, is `[time, 3]` in g at
    `accel_rate`, aligned to the same start.
    """

    participant: str
    recording: str
    signal: np.ndarray
    sample_rate: float
    source: str  # the file (or folder) it came from, for error messages
    channels: tuple[str, ...] = ()
    start_time: float = float("nan")  # unix seconds (UTC); NaN where unknown
    accel: np.ndarray | None = None
    accel_rate: float = 0.0

    def __post_init__(self):
        self.signal = np.asarray(self.signal, dtype=np.float64)
        if self.signal.ndim == 1:
            self.signal = self.signal[:, None]
        if self.signal.ndim != 2:
            raise DataError(
                self.source, f"signal must be [time, channels], got {self.signal.shape}"
            )
        if not self.sample_rate > 0:
            raise DataError(self.source, f"sampling rate must be positive, got {self.sample_rate}")
        if not self.channels:
            self.channels = tuple(f"ch{i}" for i in range(self.signal.shape[1]))
        if len(self.channels) != self.signal.shape[1]:
            raise DataError(
                self.source,
                f"{len(self.channels)} channel names for {self.signal.shape[1]} channels",
            )

    @property
    def duration_s(self) -> float:
        return self.signal.shape[0] / self.sample_rate
