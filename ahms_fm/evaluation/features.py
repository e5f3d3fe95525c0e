"""Hand-crafted features of preprocessed windows: the baseline that embeddings are compared with.

`handcrafted_features(windows, sample_rate, modality)` turns `[n, time, channels]`
windows (band-passed and z-scored per channel, as `ahms_fm.data.preprocess`
makes them) into an `[n, f]` float32 matrix and its column names:

- beats, detected on channel 0 (`detect_beats`: the PPG pulse's upstroke, the
  ECG's R peak, either polarity): `hr_bpm` (60 / the median
  inter-beat interval, IBI), `sdnn_ms` (sample std of the IBIs), `rmssd_ms`
  (root mean square of successive IBI differences), `pnn50` (fraction of
  those differences above 50 ms), `beat_count` (beats detected) and
  `beat_coverage` (the kept IBIs' total length / the window's). IBIs outside
  `[min_rr_s, max_rr_s]` (default 0.27-2 s: 220-30 bpm) or more than
  `max_rr_deviation` (30%) from the median of those are dropped as missed or
  spurious beats (one missed beat would otherwise double an RMSSD; an
  irregular rhythm keeps most of its spread, and loses coverage), and a
  successive difference needs both of its IBIs kept;
- statistics of each channel c (suffix `_ch{c}`): `skew`, `kurtosis` (excess,
  as `scipy.stats` with its defaults), percentiles `p5 p25 p50 p75 p95`,
  `mean_abs_diff` (mean |x[t+1] - x[t]| per sample), `zero_cross_hz` (sign
  changes per second), and from a Hann-windowed periodogram: `dominant_hz` (the
  peak within the bands), `power_{lo}-{hi}hz` (a band's share of the power of
  all frequencies above DC) and `spectral_entropy` (Shannon entropy of the
  spectrum within the bands over log of its bin count, in [0, 1]). Means and
  stds are left out: a z-scored window has 0 and 1.

NaN marks a feature that is undefined for a window (the probe imputes it, e.g.
with the training mean): the rate and HRV where fewer than `min_beats - 1`
IBIs (at least 2; default 3 beats) are kept, RMSSD and pNN50 also where no
two kept IBIs are adjacent; moments and spectral features of a constant
channel; every feature of a window holding NaN or Inf. `beat_count` and `beat_coverage` are
always defined (0 for a flat window). Band-limited noise still has peaks, so
it gets a rate: no periodicity gate here, since the windows have passed the
preprocessing's quality checks and an irregular rhythm (atrial fibrillation)
must keep its HRV.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.fft
from scipy import ndimage
from scipy import signal as sps

# Band edges (Hz) per modality: octaves inside the preprocessing's band-pass.
DEFAULT_BAND_EDGES = {
    "ppg": (0.5, 1.0, 2.0, 4.0, 8.0),
    "ecg": (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 40.0),
}
BEAT_FEATURES = ("hr_bpm", "sdnn_ms", "rmssd_ms", "pnn50", "beat_count", "beat_coverage")
_PERCENTILES = (5, 25, 50, 75, 95)


def feature_names(channels: int, band_edges) -> list[str]:
    """Column names of `handcrafted_features` for `channels` channels and these band edges."""
    bands = [f"power_{lo:g}-{hi:g}hz" for lo, hi in itertools.pairwise(band_edges)]
    stats = [
        "skew",
        "kurtosis",
        *(f"p{q}" for q in _PERCENTILES),
        "mean_abs_diff",
        "zero_cross_hz",
        "dominant_hz",
        *bands,
        "spectral_entropy",
    ]
    return [*BEAT_FEATURES, *(f"{s}_ch{c}" for c in range(channels) for s in stats)]


def detect_beats(
    x: np.ndarray,
    sample_rate: float,
    modality: str,
    *,
    max_bpm: float = 220.0,
    min_prominence: float = 0.35,
    reference_bpm: float = 40.0,
    upstroke_seconds: float = 0.3,
    slope_seconds: float = 0.2,
    qrs_seconds: float = 0.05,
) -> np.ndarray:
    """Beat times, in (fractional) samples, of one `[time]` window.

    Candidate beats are peaks at least one beat at `max_bpm` apart and at least
    `min_prominence` times as prominent as a typical beat: the median
    prominence of the strongest peaks that a `reference_bpm` rhythm would give
    in the window (so that a few larger artefacts do not raise the bar).

    - PPG: systolic peaks of the wave (blood-volume polarity, peak up); the
      beat is the steepest point of the upstroke (slope fitted over
      `slope_seconds`) in the `upstroke_seconds` before each peak.
    - ECG: peaks of the QRS energy (squared first difference, averaged over
      `qrs_seconds`), where T and f waves are small and polarity does not
      matter; the beat is the R peak, the extreme of the wave within
      `qrs_seconds` of it on the side (up or down) where the beats'
      deflections from the median are larger, so an inverted lead gives the
      same beats.

    Times are refined between samples by a parabola through the maximum.
    """
    x = np.asarray(x, np.float64)
    if modality == "ecg":
        half = max(1, round(qrs_seconds * sample_rate / 2))
        wave = ndimage.uniform_filter1d(np.diff(x) ** 2, 2 * half + 1, mode="nearest")
    elif modality == "ppg":
        wave = x
    else:
        raise ValueError(f"modality must be 'ppg' or 'ecg', got {modality!r}")
    distance = max(1, int(np.ceil(60.0 / max_bpm * sample_rate)))
    peaks, props = sps.find_peaks(wave, distance=distance, prominence=0.0)
    prominence = props["prominences"]
    if not np.any(prominence > 0):  # also: no peaks at all (a flat window)
        return np.zeros(0)
    strongest = max(1, round(len(x) / sample_rate * reference_bpm / 60.0))
    typical = np.median(np.sort(prominence)[-strongest:])
    peaks = peaks[prominence >= min_prominence * typical]
    if modality == "ppg":
        # The steepest point of the upstroke before each peak: a systolic peak
        # can jump between the forward and the reflected wave where they are
        # about as high, the upstroke cannot (and is the sharper fiducial). The
        # slope is that of a least-squares line over `slope_seconds`, which
        # noise moves less than a difference: the Savitzky-Golay derivative,
        # as a kernel (`savgol_filter` costs 9x more per call).
        k = np.arange(-max(1, round(slope_seconds * sample_rate / 2)), 0)
        k = np.concatenate([k, [0], -k[::-1]])
        slope = np.convolve(x, k[::-1] / np.sum(k * k), mode="same")
        near = np.clip(
            peaks[:, None] - np.arange(round(upstroke_seconds * sample_rate), -1, -1), 0, len(x) - 1
        )
        beats = np.unique(near[np.arange(len(peaks)), np.argmax(slope[near], axis=1)])
        return _refine(slope, beats[beats > 0])  # at 0: the upstroke began before the window
    near = np.clip(peaks[:, None] + np.arange(-half, half + 2), 0, len(x) - 1)
    around = x[near]
    median = np.median(x)
    up = np.median(around.max(axis=1) - median)
    down = np.median(median - around.min(axis=1))
    sign = 1.0 if up >= down else -1.0
    beats = np.unique(near[np.arange(len(peaks)), np.argmax(sign * around, axis=1)])
    return _refine(sign * x, beats)


def _refine(y: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Sub-sample positions of local maxima of `y` by a parabola through 3 samples.

    At 64 Hz a whole-sample beat time alone would add ~6 ms to an RMSSD.
    """
    inner = (peaks > 0) & (peaks < len(y) - 1)
    p = np.clip(peaks, 1, len(y) - 2)
    y0, y1, y2 = y[p - 1], y[p], y[p + 1]
    curvature = y0 - 2 * y1 + y2
    shift = 0.5 * (y0 - y2) / np.where(curvature < 0, curvature, -1.0)
    shift = np.where(inner & (curvature < 0), np.clip(shift, -0.5, 0.5), 0.0)
    return peaks + shift


def beat_features(
    beats: np.ndarray,
    sample_rate: float,
    length: int,
    *,
    min_rr_s: float = 0.27,
    max_rr_s: float = 2.0,
    max_rr_deviation: float = 0.3,
    min_beats: int = 3,
) -> np.ndarray:
    """`BEAT_FEATURES` of one window of `length` samples from its beat times (in samples)."""
    ibi = np.diff(np.asarray(beats, np.float64)) / sample_rate  # s
    kept = (ibi >= min_rr_s) & (ibi <= max_rr_s)
    if kept.any():
        # A missed beat (an interval twice as long) or a spurious one (two short
        # ones) would dominate SDNN and RMSSD: drop intervals far from the median.
        typical = np.median(ibi[kept])
        kept &= np.abs(ibi - typical) <= max_rr_deviation * typical
    out = np.full(len(BEAT_FEATURES), np.nan)
    out[4] = len(beats)
    out[5] = ibi[kept].sum() * sample_rate / length
    if kept.sum() < max(min_beats - 1, 2):
        return out
    good = ibi[kept]
    out[0] = 60.0 / np.median(good)
    out[1] = 1e3 * np.std(good, ddof=1)
    # Successive differences only between adjacent kept intervals (a dropped
    # interval would otherwise join two beats that are not neighbours).
    diffs = np.diff(ibi)[kept[1:] & kept[:-1]]
    if len(diffs):
        out[2] = 1e3 * np.sqrt(np.mean(diffs**2))
        out[3] = np.mean(np.abs(diffs) > 0.05)
    return out


def _channel_statistics(x: np.ndarray, sample_rate: float, band_edges) -> np.ndarray:
    """Per-channel statistics of `[n, channels, time]` windows -> `[n, channels, s]`."""
    length = x.shape[-1]
    d = x - x.mean(axis=-1, keepdims=True)
    d2 = d * d  # products, not powers: `d**3` runs through pow() at 1/100 the speed
    m2 = np.mean(d2, axis=-1)
    defined = m2 > 1e-12  # a constant channel has no shape
    safe = np.where(defined, m2, 1.0)
    skew = np.where(defined, np.mean(d2 * d, axis=-1) / safe**1.5, np.nan)
    kurtosis = np.where(defined, np.mean(d2 * d2, axis=-1) / safe**2 - 3.0, np.nan)
    percentiles = np.moveaxis(np.percentile(x, _PERCENTILES, axis=-1), 0, -1)
    mean_abs_diff = np.mean(np.abs(np.diff(x, axis=-1)), axis=-1)
    sign = np.signbit(x)
    zero_cross = np.count_nonzero(sign[..., 1:] != sign[..., :-1], axis=-1)
    zero_cross = zero_cross * sample_rate / length

    # A Hann-windowed periodogram (`scipy.signal.periodogram` computes the same
    # in float64, 25x slower here); the fractions below need no scaling.
    spectrum = scipy.fft.rfft(d * sps.windows.hann(length, sym=False).astype(x.dtype), axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    freqs = scipy.fft.rfftfreq(length, 1.0 / sample_rate)
    total = power[..., 1:].sum(axis=-1)
    has_power = total > 0
    total = np.where(has_power, total, 1.0)
    edges = np.asarray(band_edges, np.float64)
    fractions = [
        power[..., (freqs >= lo) & (freqs < hi)].sum(axis=-1) / total
        for lo, hi in itertools.pairwise(edges)
    ]
    inside = (freqs >= edges[0]) & (freqs < edges[-1])
    band_power = power[..., inside]
    dominant = freqs[inside][np.argmax(band_power, axis=-1)]
    p = band_power / np.maximum(band_power.sum(axis=-1, keepdims=True), 1e-30)
    entropy = -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=-1) / np.log(inside.sum())
    spectral = np.stack([dominant, *fractions, entropy], axis=-1)
    spectral[~has_power] = np.nan
    return np.concatenate(
        [
            np.stack([skew, kurtosis], axis=-1),
            percentiles,
            np.stack([mean_abs_diff, zero_cross], axis=-1),
            spectral,
        ],
        axis=-1,
    )


def handcrafted_features(
    windows: np.ndarray,
    sample_rate: float,
    modality: str,
    *,
    band_edges=None,
    max_bpm: float = 220.0,
    min_prominence: float = 0.35,
    reference_bpm: float = 40.0,
    upstroke_seconds: float = 0.3,
    slope_seconds: float = 0.2,
    qrs_seconds: float = 0.05,
    min_rr_s: float = 0.27,
    max_rr_s: float = 2.0,
    max_rr_deviation: float = 0.3,
    min_beats: int = 3,
    chunk: int = 256,
    progress: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """`[n, time, channels]` preprocessed windows -> (`[n, f]` float32 features, names).

    See the module docstring for the features and where they are NaN; the
    beat thresholds are those of `detect_beats` and `beat_features`, and
    `band_edges` defaults to `DEFAULT_BAND_EDGES[modality]` (edges above the
    Nyquist frequency move down to it). Statistics are computed `chunk` windows at
    a time (bounded memory); beats are found window by window.
    """
    windows = np.asarray(windows)
    if windows.ndim != 3:
        raise ValueError(f"windows must be [n, time, channels], got shape {windows.shape}")
    if modality not in DEFAULT_BAND_EDGES:
        raise ValueError(f"modality must be 'ppg' or 'ecg', got {modality!r}")
    n, length, channels = windows.shape
    edges = DEFAULT_BAND_EDGES[modality] if band_edges is None else band_edges
    edges = sorted({min(float(e), sample_rate / 2) for e in edges})
    names = feature_names(channels, edges)
    out = np.full((n, len(names)), np.nan, np.float32)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"{modality} features", unit="window")
    for lo in range(0, n, chunk):
        # [rows, channels, time]: reductions along contiguous time are faster.
        x = np.ascontiguousarray(windows[lo : lo + chunk].transpose(0, 2, 1), np.float32)
        finite = np.isfinite(x).all(axis=(1, 2))
        if not finite.all():  # (not in place: x may be a view of `windows`)
            x = np.where(finite[:, None, None], x, np.float32(0.0))
        stats = _channel_statistics(x, sample_rate, edges)
        beats = np.stack(
            [
                beat_features(
                    detect_beats(
                        w,
                        sample_rate,
                        modality,
                        max_bpm=max_bpm,
                        min_prominence=min_prominence,
                        reference_bpm=reference_bpm,
                        upstroke_seconds=upstroke_seconds,
                        slope_seconds=slope_seconds,
                        qrs_seconds=qrs_seconds,
                    ),
                    sample_rate,
                    length,
                    min_rr_s=min_rr_s,
                    max_rr_s=max_rr_s,
                    max_rr_deviation=max_rr_deviation,
                    min_beats=min_beats,
                )
                for w in x[:, 0]
            ]
        )
        block = np.concatenate([beats, stats.reshape(len(x), -1)], axis=1)
        block[~finite] = np.nan
        out[lo : lo + len(x)] = block
        if bar is not None:
            bar.update(len(x))
    if bar is not None:
        bar.close()
    return out, names
