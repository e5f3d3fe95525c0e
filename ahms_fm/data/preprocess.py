"""From a recording to model-ready segments: one implementation for ingestion and inference.

    resample (polyphase) -> band-pass (zero phase) -> window -> quality checks -> z-score

Defaults per modality live in the configs (`input`, `preprocess`, `quality`):

| | PPG | ECG |
|---|---|---|
| rate, window | 64 Hz, 60 s (3,840 samples) | 128 Hz, 30 s (3,840 samples) |
| band-pass | 0.5-8 Hz, Butterworth order 4, forward-backward | 0.5-40 Hz, same |
| normalization | z-score each channel of each segment | same |

Quality checks, in this order (a rejected window gets the first failing reason):

- `too_short`: the recording is shorter than one window (one count per recording);
- `nonfinite`: the window holds a NaN or an Inf;
- `flat`: more than `max_flat_fraction` of it lies in runs of identical raw
  samples at least `flat_seconds` long (a detached sensor, a dropout);
- `clipped`: more than `max_clipped_fraction` of its raw samples (in some
  channel) sit at the window's minimum or maximum (saturation at a rail);
- `motion`: the std of the accelerometer magnitude exceeds `max_motion_g`
  (only where an accelerometer is recorded);
- `heart_rate`: the dominant beat period (autocorrelation peak of the PPG, or
  of the QRS energy for ECG) is not a rate within `heart_rate_bpm`.

Flat and clipped runs are found on the raw samples at the native rate, where
"identical" and "at the rail" are exact; everything is vectorized over windows.
"""

from __future__ import annotations

import dataclasses
import fractions
import math

import numpy as np
from scipy import signal as sps

from ahms_fm.data.recording import DataError, Recording
from ahms_fm.data.spec import REASONS, ModalitySpec, QualitySpec

__all__ = [  # noqa: RUF022 (the specs live in data/spec.py; importable from here too)
    "REASONS",
    "ModalitySpec",
    "QualitySpec",
    "Segments",
    "resample",
    "bandpass",
    "zscore",
    "estimate_heart_rate",
    "segment_array",
    "segment_recording",
    "preprocess_windows",
]

_HR_RATE_HZ = 32.0  # rate at which beat periods are searched
_HR_MIN_PERIODICITY = 0.5  # below it, the rate comes from peak intervals instead
_HR_PEAK_FRACTION = 0.85  # of the highest autocorrelation peak


@dataclasses.dataclass
class Segments:
    """Every window of one recording: the kept ones z-scored, the others with a reason.

    `signal` is `[n, time, channels]` float32 for all n windows (rejected ones
    too, so callers can inspect them); `reason[i]` is "" for a kept window.
    """

    signal: np.ndarray
    offset_s: np.ndarray  # start of each window, seconds from the recording's start
    heart_rate: np.ndarray  # estimated, beats per minute; NaN where none was found
    quality: np.ndarray  # height of the autocorrelation peak, in [0, 1]: periodicity
    reason: np.ndarray  # str per window; "" = kept
    too_short: bool = False  # the recording held no whole window (and was not padded)
    pad_s: np.ndarray | None = None  # seconds of zeros after the signal, per window

    def __post_init__(self):
        if self.pad_s is None:
            self.pad_s = np.zeros(len(self.reason))

    @property
    def kept(self) -> np.ndarray:
        return self.reason == ""

    def rejected_counts(self) -> dict[str, int]:
        counts = {r: int(np.sum(self.reason == r)) for r in REASONS}
        counts["too_short"] += int(self.too_short)
        return {r: n for r, n in counts.items() if n}


# ----------------------------------------------------------------------------
# Signal processing on whole recordings, [time, channels].
# ----------------------------------------------------------------------------


RATE_TOLERANCE = 1e-4  # relative: 0.006 bpm at 60 bpm, 0.36 s of drift an hour
MAX_AMPLITUDE = 1e30  # no physical unit or ADC count of a biosignal comes near


def resample(x: np.ndarray, rate: float, target_rate: float) -> np.ndarray:
    """Polyphase resampling along axis 0 (anti-aliased), by the closest ratio up/down
    with down <= 10,000: exact for the usual rates, and within RATE_TOLERANCE of the
    target for any positive rate (a clock at 100.3 Hz, or 100.29999977 from timestamps)."""
    if not (np.isfinite(rate) and rate > 0):
        raise ValueError(f"sampling rate must be a positive number of Hz, got {rate}")
    if rate == target_rate:
        return x
    want = target_rate / rate
    for limit in (1000, 10_000):  # short filters where they suffice
        ratio = fractions.Fraction(want).limit_denominator(limit)
        if ratio > 0 and abs(float(ratio) - want) <= RATE_TOLERANCE * want:
            break
    else:
        raise ValueError(
            f"cannot resample {rate} Hz to {target_rate} Hz within {RATE_TOLERANCE:g} of the rate"
        )
    # padtype "line": the default zero padding makes a filter transient at both ends of
    # any signal on an offset (raw PPG sits on a large one), enough to reject end windows.
    return sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=0, padtype="line")


def bandpass(x: np.ndarray, rate: float, band_hz, order: int, axis: int = 0) -> np.ndarray:
    """Zero-phase Butterworth band-pass (high-pass alone if the top is at or above Nyquist)."""
    low, high = band_hz
    nyquist = rate / 2
    if low <= 0 and (high <= 0 or high >= nyquist):
        return x
    if high <= 0 or high >= nyquist:
        sos = sps.butter(order, low, "highpass", fs=rate, output="sos")
    elif low <= 0:
        sos = sps.butter(order, high, "lowpass", fs=rate, output="sos")
    else:
        sos = sps.butter(order, (low, high), "bandpass", fs=rate, output="sos")
    return sps.sosfiltfilt(sos, x, axis=axis)


def zscore(x: np.ndarray, axis: int = -2, eps: float = 1e-6) -> np.ndarray:
    """Zero mean, unit variance along `axis` (time), for each segment and channel."""
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    return (x - mean) / np.maximum(std, eps)


def _fill_nonfinite(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate NaN/Inf samples (so filters do not smear them); their mask."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, bad
    x = x.copy()
    t = np.arange(len(x))
    for c in range(x.shape[1]):
        ok = ~bad[:, c]
        x[:, c] = np.interp(t, t[ok], x[ok, c]) if ok.any() else 0.0
    return x, bad


def _long_runs(x: np.ndarray, min_run: int) -> np.ndarray:
    """[n, time] bool: the sample of each [n, channels, time] window lies in a run of at
    least `min_run` identical values in some channel."""
    n, _, length = x.shape
    out = np.zeros((n, length), bool)
    k = min_run - 1  # a run of min_run samples is k equal steps in a row
    if k < 1 or length <= k:
        return out
    same = np.diff(x, axis=-1) == 0  # [n, c, length - 1]
    c = np.concatenate(
        [np.zeros((*same.shape[:2], 1), np.int32), np.cumsum(same, axis=-1, dtype=np.int32)],
        axis=-1,
    )
    starts = (c[..., k:] - c[..., :-k]) == k  # steps j..j+k-1 all equal
    rows = np.flatnonzero(starts.any(axis=(1, 2)))
    if len(rows) == 0:
        return out
    starts = starts[rows]
    # Samples j..j+k are in the run that starts at step j: covered[j] counts the
    # starts in [j - k, j], a difference of a cumulative sum padded at both ends.
    d = np.cumsum(starts, axis=-1, dtype=np.int32)
    pad_lo = np.zeros((*d.shape[:2], k + 1), np.int32)
    pad_hi = np.repeat(d[..., -1:], length + 1 - d.shape[-1], axis=-1)
    ext = np.concatenate([pad_lo, d, pad_hi], axis=-1)  # ext[m + k + 1] = starts[:m + 1].sum()
    covered = (ext[..., k + 1 : k + 1 + length] - ext[..., :length]) > 0
    out[rows] = covered.any(axis=1)
    return out


def _flat_fraction(x: np.ndarray, min_run: int) -> np.ndarray:
    """[n] fraction of each [n, channels, time] window that lies in long constant runs."""
    return _long_runs(x, min_run).mean(axis=-1)


def _clipped(windows: np.ndarray) -> np.ndarray:
    """[n] per window of raw samples [n, channels, time]: the largest fraction of a
    channel's samples at its min or max (0 for a constant channel: that is `flat`).

    A natural wave touches its extremes at a few samples; a saturated one sits
    there (whatever the rail's level, which differs between devices and gains).
    """
    lo = np.nanmin(windows, axis=-1, keepdims=True)
    hi = np.nanmax(windows, axis=-1, keepdims=True)
    frac = ((windows == lo) | (windows == hi)).mean(axis=-1)
    return np.where(hi[..., 0] > lo[..., 0], frac, 0.0).max(axis=-1)


def _clipped_fraction(x: np.ndarray, rate: float, starts_s: np.ndarray, seconds: float):
    """`_clipped` of each window [start, start + seconds) of a [time, channels] recording
    at its native `rate`."""
    out = np.zeros(len(starts_s))
    for i, start in enumerate(starts_s):
        w = x[round(start * rate) : round((start + seconds) * rate)]
        if len(w):
            out[i] = _clipped(w.T[None])[0]
    return out


def _window_fraction(mask: np.ndarray, rate: float, starts_s: np.ndarray, seconds: float):
    """Fraction of each window [start, start + seconds) where a [time] mask at `rate` is set."""
    cs = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    a = np.clip(np.round(starts_s * rate).astype(np.int64), 0, len(mask))
    b = np.clip(np.round((starts_s + seconds) * rate).astype(np.int64), 0, len(mask))
    return (cs[b] - cs[a]) / np.maximum(b - a, 1)


def _window_std(v: np.ndarray, rate: float, starts_s: np.ndarray, seconds: float):
    """Std of a [time] series over each window, by cumulative sums."""
    v = v - v.mean()
    s1 = np.concatenate([[0.0], np.cumsum(v)])
    s2 = np.concatenate([[0.0], np.cumsum(v * v)])
    a = np.clip(np.round(starts_s * rate).astype(np.int64), 0, len(v))
    b = np.clip(np.round((starts_s + seconds) * rate).astype(np.int64), 0, len(v))
    n = np.maximum(b - a, 1)
    mean = (s1[b] - s1[a]) / n
    return np.sqrt(np.maximum((s2[b] - s2[a]) / n - mean**2, 0.0))


# ----------------------------------------------------------------------------
# Heart rate from windows, [n, time, channels].
# ----------------------------------------------------------------------------


def estimate_heart_rate(windows: np.ndarray, rate: float, modality: str):
    """Beats per minute and periodicity of each window, from its autocorrelation.

    PPG: the autocorrelation of each (filtered) channel, averaged over channels.
    ECG: that of the QRS energy (squared first difference, smoothed over 50 ms),
    whose only strong period is the beat. The beat period is the first local
    maximum between 0.2 s and 3 s (20-300 bpm) that reaches 85% of the
    highest (not a multiple of the period), refined by a parabola. Where that
    peak is below 0.5 (an irregular rhythm such as atrial fibrillation), the
    rate is the median interval between prominent peaks instead. Windows with
    neither get NaN (then rejected as an implausible rate). The periodicity is
    the autocorrelation peak's height.
    """
    x = np.ascontiguousarray(np.asarray(windows, np.float32).transpose(0, 2, 1))
    return _heart_rate_nct(x, rate, modality)


def _heart_rate_nct(x: np.ndarray, rate: float, modality: str):
    """`estimate_heart_rate` on windows laid out [n, channels, time] (contiguous time)."""
    if modality == "ecg":
        e = np.diff(x, axis=-1) ** 2
        width = max(1, round(0.05 * rate))
        x = sps.fftconvolve(e, np.full((1, 1, width), 1.0 / width, np.float32), "same", axes=-1)
    # Beats are below 4 Hz: averaging down to ~32 Hz keeps them and costs less.
    q = max(1, int(rate // _HR_RATE_HZ))
    n, channels, length = x.shape
    length, rate = length // q, rate / q
    x = x[..., : length * q].reshape(n, channels, length, q).mean(axis=-1)
    x = x - x.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(x, n=2 * length, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).mean(axis=1)
    ac = np.fft.irfft(power, axis=-1)[:, :length]
    ac = ac / np.maximum(ac[:, :1], 1e-12)
    lo, hi = max(1, int(0.2 * rate)), min(length - 2, math.ceil(3.0 * rate))
    mid = ac[:, lo:hi]
    peak = (mid > ac[:, lo - 1 : hi - 1]) & (mid >= ac[:, lo + 1 : hi + 1])
    score = np.where(peak, mid, -np.inf)
    best = score.max(axis=1, keepdims=True)
    found = np.isfinite(best[:, 0])
    # Multiples of the period are peaks of nearly the same height: take the first
    # peak close to the highest.
    k = np.argmax(score >= _HR_PEAK_FRACTION * best, axis=1)
    lag = lo + k
    y0, y1, y2 = (ac[np.arange(n), lag + d] for d in (-1, 0, 1))
    denom = y0 - 2 * y1 + y2
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (y0 - y2) / np.where(denom == 0, 1, denom), 0)
    bpm = np.where(found, 60.0 * rate / (lag + np.clip(shift, -0.5, 0.5)), np.nan)
    periodicity = np.where(found, np.clip(y1, 0, 1), 0.0)
    # Irregular rhythms (atrial fibrillation) have no clear period: there the
    # median interval between prominent peaks is the rate.
    for i in np.flatnonzero(periodicity < _HR_MIN_PERIODICITY):
        wave = x[i].mean(axis=0)
        peaks, _ = sps.find_peaks(
            wave, distance=max(1, int(0.2 * rate)), prominence=0.5 * wave.std()
        )
        if len(peaks) >= 3:
            bpm[i] = 60.0 * rate / np.median(np.diff(peaks))
    return bpm, periodicity


# ----------------------------------------------------------------------------
# Recordings to segments.
# ----------------------------------------------------------------------------


def segment_array(
    signal: np.ndarray,
    sample_rate: float,
    spec: ModalitySpec,
    quality: QualitySpec | None = None,
    *,
    hop_seconds: float = 0.0,
    accel: np.ndarray | None = None,
    accel_rate: float = 0.0,
    source: str = "<array>",
    max_pad_fraction: float = 0.0,
) -> Segments:
    """Preprocess one continuous `[time, channels]` recording into segments.

    With `quality=None` only non-finite windows are rejected (inference on
    signals the caller vouches for). A recording shorter than a window is
    `too_short` (no segments), unless `max_pad_fraction` > 0 and it lacks at most
    that fraction of a window: then it is one window, checked and z-scored on its
    own samples and followed by zeros (the signal's mean), `pad_s` recording how
    many seconds were padded.
    """
    x = np.asarray(signal, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DataError(source, f"signal must be [time, channels], got shape {x.shape}")
    if x.shape[1] != spec.channels:
        raise DataError(
            source, f"{x.shape[1]} channel(s), but the {spec.modality} spec expects {spec.channels}"
        )
    finite = np.isfinite(x)
    peak = float(np.max(np.abs(x[finite]))) if finite.any() else 0.0
    if peak > MAX_AMPLITUDE:  # filtering and z-scoring would overflow into NaN
        raise DataError(
            source,
            f"amplitudes out of range: |value| up to {peak:.3g}, above "
            f"{MAX_AMPLITUDE:g} in any unit (a corrupt or mis-scaled file?)",
        )
    if not 0.0 <= max_pad_fraction < 1.0:
        raise ValueError(f"max_pad_fraction must be in [0, 1), got {max_pad_fraction}")
    length = spec.segment_length
    hop_s = hop_seconds or spec.window_seconds
    duration = len(x) / sample_rate
    w = spec.window_seconds  # seconds of signal a window covers
    count = math.floor((duration - spec.window_seconds) / hop_s + 1e-9) + 1
    padded = duration + 1e-9 < spec.window_seconds
    if (
        padded
        and duration + 1e-9 >= (1.0 - max_pad_fraction) * spec.window_seconds > 0
        and max_pad_fraction > 0
        and len(x) >= 2
    ):
        count, w = 1, duration
    elif padded or count <= 0:
        empty = np.zeros((0, length, spec.channels), np.float32)
        none = np.zeros(0)
        return Segments(empty, none, none, none, np.zeros(0, "<U10"), too_short=True)
    starts_s = np.arange(count) * hop_s

    filled, nonfinite = _fill_nonfinite(x)
    y = resample(filled, sample_rate, spec.sample_rate)
    y = bandpass(y, spec.sample_rate, spec.band_hz, spec.filter_order)
    if padded:
        windows = y[None, :length]  # shorter than a window: zeros follow after z-scoring
    else:
        if len(y) < round(starts_s[-1] * spec.sample_rate) + length:  # resampler rounding
            y = np.pad(y, ((0, length), (0, 0)), mode="edge")
        idx = np.round(starts_s * spec.sample_rate).astype(np.int64)[:, None] + np.arange(length)
        windows = y[idx]  # [n, length, channels]

    reason = np.full(count, "", dtype="<U10")

    def reject(name, bad):
        reason[(reason == "") & bad] = name

    reject("nonfinite", _window_fraction(nonfinite.any(1), sample_rate, starts_s, w) > 0)
    bpm, periodicity = estimate_heart_rate(windows, spec.sample_rate, spec.modality)
    if quality is not None:
        min_run = max(2, round(quality.flat_seconds * sample_rate))
        flat = _window_fraction(_long_runs(x.T[None], min_run)[0], sample_rate, starts_s, w)
        reject("flat", flat > quality.max_flat_fraction)
        clipped = _clipped_fraction(x, sample_rate, starts_s, w)
        reject("clipped", clipped > quality.max_clipped_fraction)
        if accel is not None and len(accel):
            magnitude = np.linalg.norm(np.asarray(accel, np.float64), axis=1)
            reject("motion", _window_std(magnitude, accel_rate, starts_s, w) > quality.max_motion_g)
        lo, hi = quality.heart_rate_bpm
        reject("heart_rate", ~((bpm >= lo) & (bpm <= hi)))

    out = zscore(windows).astype(np.float32)
    if not padded:
        return Segments(out, starts_s, bpm, periodicity, reason)
    pad = length - out.shape[1]
    out = np.pad(out, ((0, 0), (0, pad), (0, 0)))
    return Segments(
        out, starts_s, bpm, periodicity, reason, pad_s=np.array([pad / spec.sample_rate])
    )


def segment_recording(
    rec: Recording,
    spec: ModalitySpec,
    quality: QualitySpec | None,
    hop_seconds: float = 0.0,
    max_pad_fraction: float = 0.0,
) -> Segments:
    """`segment_array` on a reader's `Recording` (its accelerometer used for motion).
    Any failure is a `DataError` naming the recording's file."""
    try:
        return segment_array(
            rec.signal,
            rec.sample_rate,
            spec,
            quality,
            hop_seconds=hop_seconds,
            accel=rec.accel,
            accel_rate=rec.accel_rate,
            source=rec.source,
            max_pad_fraction=max_pad_fraction,
        )
    except DataError:
        raise
    except Exception as e:  # a library's error: named, so on_error="skip" can skip it
        raise DataError(rec.source, f"preprocessing failed ({type(e).__name__}: {e})") from e


def preprocess_windows(
    windows: np.ndarray, spec: ModalitySpec, quality: QualitySpec | None
) -> Segments:
    """The same steps for a batch of raw windows already at the spec's rate.

    Each window `[n, time, channels]` is treated as a recording of its own (the
    synthetic cohort draws segments independently); filtering runs in float32
    along contiguous memory, which is 4x faster than float64 here and well
    within the 3 digits stored.
    """
    raw = np.asarray(windows)
    n, length, channels = raw.shape
    if (length, channels) != (spec.segment_length, spec.channels):
        raise DataError(
            "<windows>",
            f"windows {raw.shape[1:]} do not match the spec "
            f"({spec.segment_length}, {spec.channels})",
        )
    nonfinite = ~np.isfinite(raw).all(axis=(1, 2))
    # Work along contiguous time, [n, channels, time]: reductions over a strided
    # axis of 4 channels cost several times more.
    raw_t = np.ascontiguousarray(raw.transpose(0, 2, 1))
    x = np.nan_to_num(raw_t, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    x = bandpass(x, spec.sample_rate, spec.band_hz, spec.filter_order, axis=-1)
    reason = np.where(nonfinite, "nonfinite", "").astype("<U10")
    bpm, periodicity = _heart_rate_nct(x, spec.sample_rate, spec.modality)
    if quality is not None:
        lo, hi = quality.heart_rate_bpm
        # Window-level flat/clipped on the raw samples, like `segment_array`.
        min_run = max(2, round(quality.flat_seconds * spec.sample_rate))
        flat = _flat_fraction(raw_t, min_run)
        clipped = _clipped(raw_t)
        for name, bad in (
            ("flat", flat > quality.max_flat_fraction),
            ("clipped", clipped > quality.max_clipped_fraction),
            ("heart_rate", ~((bpm >= lo) & (bpm <= hi))),
        ):
            reason[(reason == "") & bad] = name
    x = zscore(x, axis=-1).transpose(0, 2, 1).astype(np.float32)
    return Segments(x, np.zeros(n), bpm, periodicity, reason)
