"""The synthetic cohort: its contract, and its physiology measured on the waveforms.

The relation tests never read the latents back: they build tables whose rows
copy one participant (same id, so the same per-segment randomness) with one
label changed, generate segments, and measure the waveforms with simple
independent analysis (band-pass, scipy.signal.find_peaks, ensemble-averaged
beats). Each would fail if the documented direction of its relation were
reversed or the effect vanished.
"""

import time

import numpy as np
import pytest
from scipy import signal
from scipy.interpolate import CubicSpline

from ahms_fm.data import synthetic as syn

PPG_FS, ECG_FS = 64.0, 128.0
N_BASE = 8  # participants copied into the paired tables
SEGMENTS = np.arange(4)


@pytest.fixture(scope="module")
def cohort():
    return syn.sample_participants(7, 400)


def clone(table, i, m, **overrides):
    """A table of m copies of participant i (same id), with fields overridden per row."""
    out = {k: np.repeat(v[i : i + 1], m, axis=0) for k, v in table.items()}
    for key, values in overrides.items():
        out[key] = np.broadcast_to(np.asarray(values, dtype=out[key].dtype), out[key].shape).copy()
    return out


def paired(fn, table, segments=SEGMENTS, **kwargs):
    """Each of the table's rows over `segments`: [rows, segments, time, channels] (+ info)."""
    rows = len(table["participant"])
    index = np.repeat(np.arange(rows), len(segments))
    segment = np.tile(segments, rows)
    x, info = fn(0, table, index, segment, return_info=True, **kwargs)
    shape = (rows, len(segments))
    return x.reshape(*shape, *x.shape[1:]), {
        k: v.reshape(*shape, *v.shape[1:]) for k, v in info.items()
    }


def bandpass(x, fs, lo, hi, order=2):
    sos = signal.butter(order, [lo, hi], btype="band", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, np.asarray(x, np.float64), axis=-1)


def detect_peaks(y, fs, min_gap=0.33, rel_prominence=0.4):
    """Peak sample indices and sub-sample (parabolic) times in s of a filtered signal."""
    spread = np.percentile(y, 95) - np.percentile(y, 5)
    i, _ = signal.find_peaks(y, distance=int(min_gap * fs), prominence=rel_prominence * spread)
    i = i[(i > 0) & (i < len(y) - 1)]
    y0, y1, y2 = y[i - 1], y[i], y[i + 1]
    den = y0 - 2.0 * y1 + y2
    frac = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    return i, (i + frac) / fs


def ppg_beats(x, fs=PPG_FS):
    """Beats of PPG channel 0: (0.5-8 Hz signal, systolic-peak samples, beat times in s).

    The dominant beat period (the autocorrelation's highest peak between 0.33
    and 1.5 s) sets a refractory time of 0.6 periods, so that a distinct
    diastolic peak is not taken for a beat. Beat times: the steepest point of
    each upstroke (sub-sample), a sharper fiducial than the rounded peak.
    """
    y = bandpass(x[:, 0], fs, 0.5, 8.0)
    spectrum = np.fft.rfft(y - y.mean(), 2 * len(y))
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2)[: len(y)]
    lo, hi = int(0.33 * fs), int(1.5 * fs)
    period = (lo + int(np.argmax(autocorr[lo:hi]))) / fs
    peaks, _ = detect_peaks(y, fs, min_gap=0.6 * period, rel_prominence=0.3)
    slope = np.gradient(y)
    back = int(0.25 * fs)
    peaks = peaks[peaks > back]
    steep = np.array([j - back + int(np.argmax(slope[j - back : j])) for j in peaks], dtype=int)
    return y, peaks, _refine(slope, steep, fs)[1]


def r_peaks(x, fs=ECG_FS):
    """R peaks of an ECG, after Pan & Tompkins: the squared slope of the 8-30 Hz
    band, smoothed over 60 ms, finds the QRS complexes (a T wave is too slow to
    count); the R peak is the maximum of the 0.5-40 Hz signal within 60 ms.
    Returns the 0.5-40 Hz signal, the R samples and sub-sample R times in s."""
    energy = np.gradient(bandpass(x[:, 0], fs, 8.0, 30.0)) ** 2
    energy = np.convolve(energy, np.ones(int(0.06 * fs)), mode="same")
    i, _ = signal.find_peaks(
        energy, distance=int(0.25 * fs), height=0.25 * np.percentile(energy, 98)
    )
    wide = bandpass(x[:, 0], fs, 0.5, 40.0)
    w = int(0.06 * fs)
    i = i[(i >= w) & (i + w < len(wide))]
    i = np.array([j - w + int(np.argmax(wide[j - w : j + w + 1])) for j in i], dtype=int)
    i, times = _refine(wide, i, fs)
    return wide, i, times


def _refine(y, i, fs):
    i = i[(i > 0) & (i < len(y) - 1)]
    y0, y1, y2 = y[i - 1], y[i], y[i + 1]
    den = y0 - 2.0 * y1 + y2
    frac = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    return i, (i + frac) / fs


def rr_stats(times):
    """(heart rate in bpm, RMSSD in ms, irregularity) of a beat-time sequence.

    RMSSD uses the intervals within 20% of the median (the usual artefact
    rejection of HRV analysis); irregularity - median |successive RR
    difference| / median RR - uses all of them.
    """
    rr = np.diff(times)
    ok = np.abs(rr / np.median(rr) - 1.0) < 0.2
    pairs = ok[1:] & ok[:-1]
    rmssd = 1e3 * np.sqrt(np.mean(np.diff(rr)[pairs] ** 2))
    return 60.0 / rr.mean(), rmssd, np.median(np.abs(np.diff(rr))) / np.median(rr)


def ensemble(y, i, fs, before, after, average=np.mean):
    """Average beat of y over windows [-before, after) s around the samples i."""
    a, b = round(before * fs), round(after * fs)
    i = i[(i >= a) & (i + b <= len(y))]
    return average(np.stack([y[j - a : j + b] for j in i]), axis=0)


# ----------------------------------------------------------------------------
# Contract.
# ----------------------------------------------------------------------------


def test_participant_table(cohort):
    n = len(cohort["participant"])
    assert set(syn.PARTICIPANT_FIELDS) <= set(cohort)
    assert set(syn.MORPHOLOGY_FIELDS) <= set(cohort)
    assert {"participant", "age", "sex", "bmi", "hypertension", "af"} <= set(cohort)
    np.testing.assert_array_equal(cohort["participant"], np.arange(n))
    assert cohort["participant"].dtype == np.int64
    for key, value in cohort.items():
        assert value.shape[0] == n, key
        assert np.all(np.isfinite(value.astype(np.float64))), key
    assert cohort["hypertension"].dtype == bool and cohort["af"].dtype == bool
    assert set(np.unique(cohort["sex"])) == {0, 1}
    assert 18 <= cohort["age"].min() and cohort["age"].max() <= 85
    assert cohort["age"].max() - cohort["age"].min() > 45
    assert 17 <= cohort["bmi"].min() and cohort["bmi"].max() <= 45
    # Conditions are more common with age, as the docstring says.
    for condition in ("hypertension", "af"):
        has = cohort[condition]
        assert 0 < has.sum() < n
        assert cohort["age"][has].mean() > cohort["age"][~has].mean() + 5, condition
    assert cohort["ppg_gain"].shape == (n, syn.MAX_PPG_CHANNELS)


def test_participants_do_not_depend_on_table_size():
    small, large = syn.sample_participants(3, 20), syn.sample_participants(3, 120)
    again = syn.sample_participants(3, 20)
    other = syn.sample_participants(4, 20)
    for key in small:
        np.testing.assert_array_equal(small[key], large[key][:20])
        np.testing.assert_array_equal(small[key], again[key])
    assert not np.array_equal(small["age"], other["age"])


def test_shapes_dtypes_finite(cohort):
    index, segment = np.array([0, 5, 9]), np.array([0, 3, 100])
    x, info = syn.ppg_segments(1, cohort, index, segment, return_info=True)
    assert x.shape == (3, 3840, 4) and x.dtype == np.float32 and np.isfinite(x).all()
    assert set(info) >= {"heart_rate", "rmssd", "hour", "motion", "beats"}
    assert info["heart_rate"].shape == (3,) and np.all(
        (40 < info["heart_rate"]) & (info["heart_rate"] < 160)
    )
    e = syn.ecg_segments(1, cohort, index, segment)
    assert e.shape == (3, 3840, 1) and e.dtype == np.float32 and np.isfinite(e).all()
    # Raw: PPG carries its DC level; ECG is in mV around zero.
    assert np.all(x.mean(axis=1) > 50)
    assert np.all(np.abs(np.median(e, axis=1)) < 0.5) and 0.2 < np.ptp(e[0]) < 10
    assert syn.ppg_segments(
        1, cohort, index, segment, sample_rate=32.0, seconds=10.0, channels=2
    ).shape == (3, 320, 2)
    assert syn.ecg_segments(1, cohort, index, segment, sample_rate=512.0).shape == (3, 15360, 1)
    empty, info = syn.ppg_segments(
        1, cohort, np.array([], int), np.array([], int), return_info=True
    )
    assert empty.shape == (0, 3840, 4) and info["heart_rate"].shape == (0,)
    # A scalar segment number broadcasts over the rows.
    assert syn.ecg_segments(1, cohort, index, 2).shape == (3, 3840, 1)


def test_bad_input_is_refused(cohort):
    with pytest.raises(ValueError, match="index out of range"):
        syn.ppg_segments(0, cohort, [400], [0])
    with pytest.raises(ValueError, match="non-negative"):
        syn.ppg_segments(0, cohort, [0], [-1])
    with pytest.raises(ValueError, match="channels"):
        syn.ppg_segments(0, cohort, [0], [0], channels=9)
    with pytest.raises(ValueError, match="lacks"):
        syn.ecg_segments(0, {"participant": np.arange(3)}, [0], [0])
    with pytest.raises(ValueError, match="seed"):
        syn.sample_participants(-1, 3)


@pytest.mark.parametrize("fn", [syn.ppg_segments, syn.ecg_segments])
def test_a_segment_does_not_depend_on_the_rest_of_the_call(cohort, fn):
    index = np.array([3, 3, 17, 250, 3, 99, 42] * 6)  # > one internal chunk
    segment = np.array([0, 1, 0, 7, 2, 12, 5] * 6) + np.repeat(np.arange(6), 7) * 20
    x, info = fn(11, cohort, index, segment, return_info=True)
    order = np.random.default_rng(0).permutation(len(index))
    y, info_y = fn(11, cohort, index[order], segment[order], return_info=True)
    np.testing.assert_array_equal(x[order], y)
    np.testing.assert_array_equal(info["heart_rate"][order], info_y["heart_rate"])
    alone = fn(11, cohort, index[[5]], segment[[5]])
    np.testing.assert_array_equal(alone[0], x[5])
    # The participant's id and the segment, not its row in the table, pick the randomness.
    table = {k: v[[99, 3]] for k, v in cohort.items()}
    np.testing.assert_array_equal(fn(11, table, [0], [12])[0], x[5])
    assert not np.array_equal(fn(12, cohort, index[[5]], segment[[5]])[0], x[5])
    assert not np.array_equal(x[0], x[1])  # same participant, another segment


def test_generation_rate(cohort):
    """A loose bound under test load; the module docstring has the measured rate."""
    index = np.arange(256) % 400
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        syn.ppg_segments(0, cohort, index, np.arange(256))
        best = min(best, time.perf_counter() - start)
    assert 256 / best >= 300, f"{256 / best:.0f} PPG segments/s"


# ----------------------------------------------------------------------------
# Ground truth and nuisance.
# ----------------------------------------------------------------------------


def test_info_matches_the_detected_beats(cohort):
    index = np.arange(24)
    x, info = syn.ppg_segments(2, cohort, index, index, return_info=True)
    e, info_e = syn.ecg_segments(2, cohort, index, index, return_info=True)
    errors_ppg, errors_ecg, r_matched = [], [], []
    for r in range(len(index)):
        errors_ppg.append(rr_stats(ppg_beats(x[r])[2])[0] - info["heart_rate"][r])
        r_times = r_peaks(e[r])[2]
        errors_ecg.append(rr_stats(r_times)[0] - info_e["heart_rate"][r])
        beats = info_e["beats"][r]
        beats = beats[np.isfinite(beats)]
        assert np.all(np.diff(beats) > 0.25) and 0 <= beats[0] and beats[-1] < 30.0
        if not info_e["motion"][r]:
            # Detected R peaks sit on the reported ones (within 10 ms).
            nearest = np.min(np.abs(r_times[:, None] - beats[None, :]), axis=1)
            r_matched.append(np.mean(nearest < 0.01))
    assert np.median(np.abs(errors_ppg)) < 1.5
    assert np.median(np.abs(errors_ecg)) < 1.0
    assert np.median(r_matched) > 0.95
    assert info["motion"].any() or info_e["motion"].any()


def test_ppg_channels_see_one_pulse_differently(cohort):
    x, info = syn.ppg_segments(3, cohort, np.arange(12), 0, return_info=True)
    for s in x[~info["motion"]]:
        y = bandpass(s.T, PPG_FS, 0.5, 8.0)
        corr = np.corrcoef(y)
        assert corr[np.triu_indices(4, 1)].min() > 0.9  # the same pulse ...
        assert np.ptp(y.std(axis=1)) / y.std(axis=1).mean() > 0.05  # ... at its own gain
        assert np.ptp(s.mean(axis=0)) > 1.0  # and DC level


def test_heart_rate_follows_the_time_of_day(cohort):
    # Segment 8 starts at 16:00 (the circadian peak), segment 20 at 04:00 (the trough).
    assert syn.segment_hour(8) == 16.0 and syn.segment_hour(20) == 4.0
    index = np.arange(30)
    day = syn.ppg_segments(0, cohort, index, 8)
    night = syn.ppg_segments(0, cohort, index, 20)
    rate = [[rr_stats(ppg_beats(x)[2])[0] for x in batch] for batch in (day, night)]
    assert np.median(rate[0]) - np.median(rate[1]) > 5.0


# ----------------------------------------------------------------------------
# Physiology, measured on the waveforms.
# ----------------------------------------------------------------------------


def test_women_have_a_higher_heart_rate(cohort):
    diffs = []
    for i in range(N_BASE):
        x, _ = paired(syn.ppg_segments, clone(cohort, i, 2, sex=[0, 1]))
        hr = [[rr_stats(ppg_beats(seg)[2])[0] for seg in arm] for arm in x]
        diffs.append(np.median(np.subtract(*hr)))
    assert np.median(diffs) > 2.5 and np.mean(np.array(diffs) > 0) >= 0.85, diffs


@pytest.mark.parametrize("modality", ["ecg", "ppg"])
def test_heart_rate_variability_falls_with_age(cohort, modality):
    ratios = []
    for i in range(N_BASE):
        table = clone(cohort, i, 2, age=[25, 75], af=False, hypertension=False, diabetes=False)
        if modality == "ecg":
            x, _ = paired(syn.ecg_segments, table)
            rmssd = [[rr_stats(r_peaks(seg)[2])[1] for seg in arm] for arm in x]
        else:
            x, _ = paired(syn.ppg_segments, table)
            rmssd = [[rr_stats(ppg_beats(seg)[2])[1] for seg in arm] for arm in x]
        ratios.append(np.median(rmssd[1]) / np.median(rmssd[0]))
    assert np.median(ratios) < 0.65 and np.max(ratios) < 1.0, ratios


@pytest.mark.parametrize("modality", ["ecg", "ppg"])
def test_atrial_fibrillation_makes_rr_irregular(cohort, modality):
    irregular = []
    for i in range(N_BASE):
        table = clone(cohort, i, 2, af=[False, True])
        if modality == "ecg":
            x, _ = paired(syn.ecg_segments, table)
            irregular.append([np.median([rr_stats(r_peaks(s)[2])[2] for s in arm]) for arm in x])
        else:
            x, _ = paired(syn.ppg_segments, table)
            irregular.append([np.median([rr_stats(ppg_beats(s)[2])[2] for s in arm]) for arm in x])
    irregular = np.array(irregular)
    assert np.all(irregular[:, 1] > 2.0 * irregular[:, 0]) and np.all(irregular[:, 1] > 0.08), (
        irregular
    )
    assert np.median(irregular[:, 0]) < 0.05, irregular


def _pulse_shape(x):
    """Shape of the ensemble-averaged PPG beat (channel 0), scaled foot 0 to peak 1.

    Returns (centroid of the pulse over the 0.4 s after the systolic peak, in
    s; the delay of the reflected wave after the systolic peak: the first
    local maximum of the slope 0.04-0.35 s after the peak - the upstroke of a
    distinct reflected peak, or the shoulder it makes in late systole - or,
    with neither, of the curvature; the pulse's height there, a reflection /
    augmentation index).
    """
    y = bandpass(x[:, 0], PPG_FS, 0.3, 10.0)
    beat = ensemble(y, ppg_beats(x)[1], PPG_FS, 0.3, 0.7)
    fine = 1024.0
    t = np.arange(len(beat)) / PPG_FS
    tf = np.arange(0.0, t[-1], 1.0 / fine)
    spline = CubicSpline(t, beat)
    b, slope, curvature = spline(tf), spline(tf, 1), spline(tf, 2)
    peak = int(np.argmax(b))
    foot = int(np.argmin(b[:peak]))
    b = (b - b[foot]) / (b[peak] - b[foot])
    after = b[peak : peak + int(0.4 * fine)].clip(0.0)
    centroid = np.sum(after * np.arange(len(after))) / after.sum() / fine
    lo, hi = peak + int(0.04 * fine), peak + int(0.35 * fine)
    found = signal.argrelmax(slope[lo:hi])[0]
    if not len(found):
        found = signal.argrelmax(curvature[lo:hi])[0]
    k = lo + found[0] if len(found) else hi
    return centroid, (k - peak) / fine, b[k]


@pytest.mark.parametrize(
    "overrides",
    [dict(age=[25, 60], hypertension=False), dict(age=45, hypertension=[False, True])],
    ids=["age", "hypertension"],
)
def test_stiffer_arteries_reflect_earlier_and_augment_the_pulse(cohort, overrides):
    shapes = []
    for i in range(N_BASE):
        table = clone(cohort, i, 2, af=False, diabetes=False, **overrides)
        x, _ = paired(syn.ppg_segments, table)
        shapes.append([np.median([_pulse_shape(s) for s in arm], axis=0) for arm in x])
    shapes = np.array(shapes)  # [participant, (compliant, stiff), measure]
    centroid, delay, height = np.moveaxis(shapes, 2, 0)
    # The reflected wave's mass moves towards the systolic peak ...
    assert np.mean(centroid[:, 1] < centroid[:, 0]) >= 0.75, centroid
    # ... it arrives earlier and higher (in some people it merges into the peak,
    # so the claim is about most people and the median).
    assert np.mean(delay[:, 1] < delay[:, 0]) >= 0.5, delay
    assert np.median(delay[:, 1] - delay[:, 0]) < -0.015, delay
    assert np.mean(height[:, 1] > height[:, 0]) >= 0.5, height
    assert np.median(height[:, 1] - height[:, 0]) > 0.05, height


def test_pulse_amplitude_falls_with_bmi(cohort):
    ratios = []
    for i in range(N_BASE):
        x, _ = paired(syn.ppg_segments, clone(cohort, i, 2, bmi=[20, 40]))
        amp = [
            [
                np.median(
                    np.ptp(
                        np.lib.stride_tricks.sliding_window_view(
                            bandpass(s[:, 0], PPG_FS, 0.5, 8.0), 64
                        )[::64],
                        axis=1,
                    )
                )
                for s in arm
            ]
            for arm in x
        ]
        ratios.append(np.median(amp[1]) / np.median(amp[0]))
    assert np.all(np.array(ratios) < 0.7), ratios


def _qrs_and_t(x):
    """(QRS peak-to-peak in mV, R-to-T-peak time in s, mean RR in s) of an ECG."""
    wide, i, times = r_peaks(x)
    beat = ensemble(wide, i, ECG_FS, 0.3, 0.6)
    r = round(0.3 * ECG_FS)
    qrs = beat[r - 6 : r + 7].max() - beat[r - 6 : r + 7].min()
    rr = np.diff(times).mean()
    # T peak: the maximum from 0.12 s after R to before the next P wave.
    start = r + int(0.12 * ECG_FS)
    t_window = beat[start : r + int(min(0.55, 0.7 * rr) * ECG_FS)]
    k = int(np.argmax(t_window[1:-1])) + 1
    t_peak = (_refine(t_window, np.array([k]), 1.0)[1][0] + start - r) / ECG_FS
    return qrs, t_peak, rr


def test_ecg_voltage_falls_with_bmi_and_is_higher_in_men(cohort):
    for field, values in (("bmi", [20, 40]), ("sex", [1, 0])):
        ratios = []
        for i in range(N_BASE):
            x, _ = paired(syn.ecg_segments, clone(cohort, i, 2, **{field: values}))
            qrs = [np.median([_qrs_and_t(s)[0] for s in arm]) for arm in x]
            ratios.append(qrs[1] / qrs[0])
        assert np.all(np.array(ratios) < 0.92), (field, ratios)


def test_qt_shortens_with_heart_rate_and_is_longer_in_women(cohort):
    for i in range(N_BASE):
        x, _ = paired(syn.ecg_segments, clone(cohort, i, 2, hr_offset=[-10, 25], af=False))
        (_, slow_t, slow_rr), (_, fast_t, fast_rr) = [
            np.median([_qrs_and_t(s) for s in arm], axis=0) for arm in x
        ]
        assert fast_rr < slow_rr and fast_t < slow_t - 0.015
        x, _ = paired(syn.ecg_segments, clone(cohort, i, 2, sex=[1, 0], af=False))
        # Fridericia-corrected R-to-T-peak time.
        men, women = [
            np.median([q[1] / q[2] ** (1 / 3) for q in map(_qrs_and_t, arm)]) for arm in x
        ]
        assert women > men + 0.004, (men, women)


def _p_wave(segments):
    """Prominence (mV) of the P wave of the ensemble-averaged beat (R-aligned) of
    some ECG segments: the most prominent peak 0.26-0.07 s before R, or 0."""
    beats = []
    for s in segments:
        wide, i, _ = r_peaks(s)
        beats.append(ensemble(wide, i, ECG_FS, 0.4, 0.1))
    beat = np.mean(beats, axis=0)
    r = round(0.4 * ECG_FS)
    lo, hi = r - int(0.3 * ECG_FS), r - int(0.04 * ECG_FS)
    peaks, props = signal.find_peaks(beat[lo:hi], prominence=0.0)
    when = (peaks + lo - r) / ECG_FS
    inside = (when > -0.26) & (when < -0.07)
    return props["prominences"][inside].max() if inside.any() else 0.0


def test_atrial_fibrillation_removes_the_p_wave(cohort):
    p_waves = []
    for i in range(N_BASE):
        x, _ = paired(syn.ecg_segments, clone(cohort, i, 2, af=[False, True]))
        p_waves.append([_p_wave(arm) for arm in x])
    p_waves = np.array(p_waves)  # [participant, (sinus, AF)]
    assert np.all(p_waves[:, 0] > 0.04), p_waves
    assert np.all(p_waves[:, 1] < 0.3 * p_waves[:, 0]), p_waves


def test_segments_of_a_participant_look_alike(cohort):
    """Mean PPG beats (their slope, the velocity plethysmogram, which shows shape
    best): segments of one participant correlate more than participants do."""
    people, segments = 10, 4
    x = syn.ppg_segments(
        5, cohort, np.repeat(np.arange(people), segments), np.tile(np.arange(segments), people)
    )
    beats = []
    for s in x:
        y, peaks, _ = ppg_beats(s)
        beat = np.gradient(ensemble(y, peaks, PPG_FS, 0.25, 0.5, np.median))
        beats.append((beat - beat.mean()) / beat.std())
    corr = np.corrcoef(np.array(beats))
    blocks = corr.reshape(people, segments, people, segments)
    same = np.mean([blocks[a, :, a][~np.eye(segments, dtype=bool)] for a in range(people)])
    other = np.mean([blocks[a, :, b] for a in range(people) for b in range(people) if a != b])
    assert same > 0.95 and same > other + 0.05, (same, other)
    # A segment's most similar other segment is mostly its participant's (chance: 3/39).
    np.fill_diagonal(corr, -np.inf)
    who = np.repeat(np.arange(people), segments)
    assert np.mean(who[np.argmax(corr, axis=1)] == who) >= 0.8


# ----------------------------------------------------------------------------
# Ground truth: the physiology behind the waveforms (the probes' ceiling).
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["ppg", "ecg"])
def test_ground_truth_table(cohort, modality):
    n = len(cohort["participant"])
    truth = syn.ground_truth(cohort, modality)
    assert tuple(truth) == syn.TRUTH_FIELDS[modality]
    assert all(k.startswith(syn.TRUTH_PREFIX) for k in truth)
    # Physiology, never the labels: nothing with a label's name or values.
    names = {k.removeprefix(syn.TRUTH_PREFIX) for k in truth}
    assert not names & {*syn.PARTICIPANT_FIELDS, "height", "bmi"}
    labels = [cohort[f].astype(np.float64) for f in syn.PARTICIPANT_FIELDS]
    af = cohort["af"]
    for key, value in truth.items():
        assert value.shape == (n,) and value.dtype == np.float64, key
        assert not any(np.array_equal(value, label) for label in labels), key
        ok = ~af if key == "truth_pr" else np.ones(n, bool)
        assert np.all(np.isfinite(value[ok])) and np.all(value[ok] >= 0), key
    assert np.array_equal(truth["truth_af_rr_cv"] > 0, af)
    if modality == "ecg":
        assert np.all(np.isnan(truth["truth_pr"][af]))  # no P wave in AF
    small = syn.ground_truth({k: v[:30] for k, v in cohort.items()}, modality)
    for key in truth:
        np.testing.assert_array_equal(small[key], truth[key][:30])
    with pytest.raises(ValueError, match="modality"):
        syn.ground_truth(cohort, "eda")


@pytest.mark.parametrize("modality", ["ppg", "ecg"])
def test_ground_truth_is_what_the_segments_average_to(cohort, modality):
    """Over 24 segments (every hour of the day once), the rate and RMSSD of the beats
    come out at the resting values, in sinus rhythm and in AF."""
    rows = np.r_[np.flatnonzero(~cohort["af"])[:12], np.flatnonzero(cohort["af"])[:4]]
    segments = np.arange(24)
    fn = syn.ppg_segments if modality == "ppg" else syn.ecg_segments
    _, info = fn(0, cohort, np.repeat(rows, 24), np.tile(segments, len(rows)), return_info=True)
    truth = syn.ground_truth(cohort, modality)
    hr = info["heart_rate"].reshape(len(rows), 24).mean(axis=1)
    rmssd = np.median(info["rmssd"].reshape(len(rows), 24), axis=1)
    np.testing.assert_allclose(hr, truth["truth_resting_hr"][rows], atol=3.0)
    np.testing.assert_allclose(rmssd, truth["truth_rmssd"][rows], rtol=0.25)


def test_ground_truth_is_what_the_waveforms_show(cohort):
    """Measured on the waveforms (no latents read back), participants rank as their
    ground truth: reflected-wave delay (PPG), QRS amplitude and QTc (ECG). The delay's
    shoulder moves with the systolic width, which the day's strap contact and skin
    temperature change: 48 participants for the PPG (0.48 here, 0.63 without them)."""
    from scipy.stats import spearmanr

    rows = np.flatnonzero(~cohort["af"])[:48]
    index, segment = np.repeat(rows, len(SEGMENTS)), np.tile(SEGMENTS, len(rows))
    x = syn.ppg_segments(0, cohort, index, segment).reshape(len(rows), len(SEGMENTS), -1, 4)
    delay = [np.median([_pulse_shape(s)[1] for s in arm]) for arm in x]
    truth = syn.ground_truth(cohort, "ppg")
    assert spearmanr(delay, truth["truth_reflection_delay"][rows])[0] > 0.4
    rows = rows[:24]
    index, segment = np.repeat(rows, len(SEGMENTS)), np.tile(SEGMENTS, len(rows))
    e = syn.ecg_segments(0, cohort, index, segment).reshape(len(rows), len(SEGMENTS), -1, 1)
    qrs, t_peak, rr = np.array([np.median([_qrs_and_t(s) for s in arm], axis=0) for arm in e]).T
    truth = syn.ground_truth(cohort, "ecg")
    assert spearmanr(qrs, truth["truth_qrs_amplitude"][rows])[0] > 0.8
    assert spearmanr(t_peak / rr ** (1 / 3), truth["truth_qtc"][rows])[0] > 0.8


def test_ground_truth_follows_the_labels(cohort):
    """The documented relations, on the ground truth of a cohort (independent checks
    of the directions: each would fail if its relation were reversed)."""
    ppg, ecg = syn.ground_truth(cohort, "ppg"), syn.ground_truth(cohort, "ecg")
    age, bmi, sex, af = cohort["age"], cohort["bmi"], cohort["sex"], cohort["af"]
    sinus = ~af

    def corr(a, b):
        return np.corrcoef(a[sinus], b[sinus])[0, 1]

    # Stiffness index SI = height / dT rises with age (and so dT falls).
    si = cohort["height"] / 100.0 / ppg["truth_reflection_delay"]
    assert corr(age, si) > 0.6 and corr(age, ppg["truth_reflection_delay"]) < -0.4
    assert corr(age, np.log(ppg["truth_rmssd"])) < -0.4
    assert corr(age, ppg["truth_crest_time"]) > 0.1
    assert corr(bmi, np.log(ppg["truth_pulse_amplitude"])) < -0.2
    assert corr(bmi, ppg["truth_systolic_width"]) > 0.1
    assert corr(age, ecg["truth_pr"]) > 0.3
    htn = cohort["hypertension"]
    assert np.median(si[htn]) > np.median(si[~htn]) + 1.0
    women, men = sinus & (sex == 0), sinus & (sex == 1)
    assert np.mean(ppg["truth_resting_hr"][women]) > np.mean(ppg["truth_resting_hr"][men]) + 2
    assert np.mean(ecg["truth_qtc"][women]) > np.mean(ecg["truth_qtc"][men]) + 0.01
    assert np.median(ecg["truth_qrs_amplitude"][men]) > np.median(ecg["truth_qrs_amplitude"][women])
    assert np.mean(ppg["truth_resting_hr"][af]) > np.mean(ppg["truth_resting_hr"][sinus]) + 5


def test_the_watch_is_put_on_anew_each_day(cohort):
    """A day's segments share the watch's fit (a channel's gain relative to the pulse);
    other days have another fit."""
    np.testing.assert_array_equal(syn.wear_day(np.arange(8)), [0, 0, 0, 1, 1, 1, 2, 2])
    rows = np.arange(20)
    segments = np.arange(6)  # hours 8, 15, 22 of day 0, then 5, 12, 19 of day 1
    _, info = syn.ppg_segments(
        0, cohort, np.repeat(rows, 6), np.tile(segments, 20), seconds=10.0, return_info=True
    )
    fit = (info["channel_gain"] / info["pulse_amplitude"]).reshape(20, 2, 3)
    np.testing.assert_allclose(fit, fit[:, :, :1].repeat(3, axis=2), rtol=1e-12)
    assert np.all(np.abs(np.log(fit[:, 0, 0] / fit[:, 1, 0])) > 1e-3)
    # Day-to-day changes of the fit are the size the docstring gives: e^(0.25 z).
    assert 0.15 < np.std(np.log(fit[:, 0, 0] / fit[:, 1, 0])) / np.sqrt(2) < 0.4
