"""Hand-crafted features: beats, HRV and signal statistics against independent references."""

import numpy as np
import pytest
from scipy import stats

from ahms_fm.data import synthetic
from ahms_fm.data.preprocess import ModalitySpec, bandpass, preprocess_windows, zscore
from ahms_fm.evaluation.features import (
    BEAT_FEATURES,
    beat_features,
    detect_beats,
    handcrafted_features,
)

PPG_RATE, ECG_RATE = 64.0, 128.0


def gauss(t, centre, sd):
    return np.exp(-0.5 * ((t - centre) / sd) ** 2)


def rr_intervals(rng, count, mean=0.8):
    """Intervals (s) with a slow wave and beat-to-beat noise: SDNN and RMSSD ~ 40 ms."""
    k = np.arange(count)
    return mean + 0.04 * np.sin(2 * np.pi * k / 7) + rng.normal(0, 0.02, count)


def beat_train(rr, rate, seconds, waves, start=0.5):
    """Sum over beats of `waves` [(offset s, sd s, height)], sampled exactly at `rate`.

    Returns the signal, band-passed and z-scored as the preprocessing does
    ([1, time, 1]), and the intervals between the beats inside the window.
    """
    t = np.arange(round(rate * seconds)) / rate
    beats = start + np.concatenate([[0.0], np.cumsum(rr)])
    beats = beats[beats < seconds - 0.5]
    x = np.zeros_like(t)
    for b in beats:
        for offset, sd, height in waves:
            x += height * gauss(t, b + offset, sd)
    band = (0.5, 8.0) if rate == PPG_RATE else (0.5, 40.0)
    x = zscore(bandpass(x[:, None], rate, band, 4)[None], axis=1)
    return x.astype(np.float32), np.diff(beats)


def hrv(intervals):
    """Reference HR (from the median interval), SDNN and RMSSD (ms) of chosen intervals."""
    return (
        60 / np.median(intervals),
        1e3 * np.std(intervals, ddof=1),
        1e3 * np.sqrt(np.mean(np.diff(intervals) ** 2)),
    )


def column(features, names, name):
    return features[:, names.index(name)]


# A PPG pulse: systolic wave, a reflected wave almost as high (the systolic
# peak of such pulses jumps between the two humps; the upstroke does not), a
# runoff wave.
PPG_PULSE = [(0.0, 0.07, 1.0), (0.22, 0.08, 0.9), (0.45, 0.12, 0.3)]
# An ECG beat: q, R, S and a tall, broad T wave (half the R's height).
ECG_BEAT = [(-0.03, 0.008, -0.1), (0.0, 0.01, 1.0), (0.03, 0.01, -0.3), (0.3, 0.05, 0.5)]


@pytest.mark.parametrize(
    "modality, rate, seconds, waves",
    [("ppg", PPG_RATE, 60.0, PPG_PULSE), ("ecg", ECG_RATE, 30.0, ECG_BEAT)],
)
def test_heart_rate_and_hrv_of_known_beats(modality, rate, seconds, waves):
    rng = np.random.default_rng(1)
    x, intervals = beat_train(rr_intervals(rng, 100), rate, seconds, waves)
    f, names = handcrafted_features(x, rate, modality)
    hr, sdnn, rmssd = hrv(intervals)
    assert abs(column(f, names, "hr_bpm")[0] - hr) < 1.0
    assert abs(column(f, names, "sdnn_ms")[0] - sdnn) < 3.0
    assert abs(column(f, names, "rmssd_ms")[0] - rmssd) < 3.0
    expected_pnn50 = np.mean(np.abs(np.diff(intervals)) > 0.05)
    assert abs(column(f, names, "pnn50")[0] - expected_pnn50) < 0.05
    assert abs(column(f, names, "beat_count")[0] - (len(intervals) + 1)) <= 1
    assert column(f, names, "beat_coverage")[0] > 0.9


def test_beat_features_from_exact_beat_times():
    """Intervals out of range (2.5 s) or far from the median (0.5 s) are dropped, and so
    are the successive differences that touch them."""
    rr = np.array([0.80, 0.86, 0.78, 2.50, 0.82, 0.90, 0.50, 0.84, 0.80])
    beats = 64.0 * (1.0 + np.concatenate([[0.0], np.cumsum(rr)]))
    out = dict(zip(BEAT_FEATURES, beat_features(beats, 64.0, 64 * 12), strict=True))
    kept = rr[[0, 1, 2, 4, 5, 7, 8]]
    diffs = np.array([0.06, -0.08, 0.08, -0.04])  # 0-1, 1-2, 4-5, 7-8
    assert out["hr_bpm"] == pytest.approx(60 / np.median(kept))
    assert out["sdnn_ms"] == pytest.approx(1e3 * np.std(kept, ddof=1))
    assert out["rmssd_ms"] == pytest.approx(1e3 * np.sqrt(np.mean(diffs**2)))
    assert out["pnn50"] == pytest.approx(0.75)
    assert out["beat_count"] == 10
    assert out["beat_coverage"] == pytest.approx(kept.sum() / 12)
    few = beat_features(beats[:2], 64.0, 64 * 12)  # one interval: no rate
    assert np.isnan(few[:4]).all() and few[4] == 2


def test_inverted_ecg_gives_the_same_beats():
    rng = np.random.default_rng(2)
    x, _ = beat_train(rr_intervals(rng, 60, mean=0.6), ECG_RATE, 30.0, ECG_BEAT)
    up = detect_beats(x[0, :, 0], ECG_RATE, "ecg")
    down = detect_beats(-x[0, :, 0], ECG_RATE, "ecg")
    np.testing.assert_allclose(down, up, atol=0.01)
    f, names = handcrafted_features(np.concatenate([x, -x]), ECG_RATE, "ecg")
    hr = column(f, names, "hr_bpm")
    assert abs(hr[0] - 100.0) < 3 and hr[1] == pytest.approx(hr[0], abs=0.1)


def test_missed_beat_does_not_inflate_hrv():
    """An interval twice as long (a beat lost to an artefact) is dropped, not averaged in."""
    rng = np.random.default_rng(3)
    rr = rr_intervals(rng, 100)
    x, intervals = beat_train(rr, PPG_RATE, 60.0, PPG_PULSE)
    beats = detect_beats(x[0, :, 0], PPG_RATE, "ppg")
    t = np.arange(x.shape[1])
    # Flatten one pulse: interpolate across it from the trough before to the one after.
    a, b = int(beats[30] - 10), int(beats[31] - 10)
    x[0, a:b, 0] = np.interp(t[a:b], [a, b], x[0, [a, b], 0])
    f, names = handcrafted_features(x, PPG_RATE, "ppg")
    _, _, rmssd = hrv(intervals)
    assert column(f, names, "beat_count")[0] == len(beats) - 1
    assert abs(column(f, names, "rmssd_ms")[0] - rmssd) < 6.0
    coverage = column(f, names, "beat_coverage")[0]
    assert coverage < 0.98 * (intervals.sum() / 60.0)


def test_sinusoids_give_dominant_frequency_band_fractions_and_shape():
    t = np.arange(3840) / PPG_RATE
    one = np.sin(2 * np.pi * 1.5 * t)  # on a frequency bin of a 60 s window
    two = np.sin(2 * np.pi * 1.5 * t) + 0.5 * np.sin(2 * np.pi * 3.0 * t)  # powers 1 : 1/4
    x = zscore(np.stack([one, two])[..., None], axis=1)
    f, names = handcrafted_features(x, PPG_RATE, "ppg")
    np.testing.assert_allclose(column(f, names, "dominant_hz_ch0"), [1.5, 1.5], atol=1 / 60)
    np.testing.assert_allclose(column(f, names, "power_1-2hz_ch0"), [1.0, 0.8], atol=1e-3)
    np.testing.assert_allclose(column(f, names, "power_2-4hz_ch0"), [0.0, 0.2], atol=1e-3)
    np.testing.assert_allclose(column(f, names, "power_0.5-1hz_ch0"), [0, 0], atol=1e-3)
    entropy = column(f, names, "spectral_entropy_ch0")
    assert 0 < entropy[0] < entropy[1] < 0.3
    # A z-scored sine has amplitude sqrt(2): quantile q is sqrt(2) sin(pi (q - 1/2)),
    # 3 zero crossings per second at 1.5 Hz, mean |dx| = A w (2 / pi) / rate.
    for q in (5, 25, 50, 75, 95):
        expected = np.sqrt(2) * np.sin(np.pi * (q / 100 - 0.5))
        assert column(f, names, f"p{q}_ch0")[0] == pytest.approx(expected, abs=5e-3)
    assert column(f, names, "zero_cross_hz_ch0")[0] == pytest.approx(3.0, abs=1 / 60)
    expected = np.sqrt(2) * 2 * np.pi * 1.5 * (2 / np.pi) / PPG_RATE
    assert column(f, names, "mean_abs_diff_ch0")[0] == pytest.approx(expected, rel=1e-3)
    assert abs(column(f, names, "skew_ch0")[0]) < 1e-3
    assert column(f, names, "kurtosis_ch0")[0] == pytest.approx(-1.5, abs=1e-3)


def test_moments_match_scipy_stats():
    rng = np.random.default_rng(4)
    x = zscore(rng.gamma(2.0, size=(3, 3840, 2)), axis=1).astype(np.float32)
    f, names = handcrafted_features(x, PPG_RATE, "ppg")
    for c in range(2):
        np.testing.assert_allclose(
            column(f, names, f"skew_ch{c}"), stats.skew(x[..., c], axis=1), rtol=1e-3
        )
        np.testing.assert_allclose(
            column(f, names, f"kurtosis_ch{c}"), stats.kurtosis(x[..., c], axis=1), rtol=1e-3
        )


def test_flat_noise_and_nonfinite_windows():
    rng = np.random.default_rng(5)
    noise = zscore(bandpass(rng.normal(size=(3840, 2)), PPG_RATE, (0.5, 8.0), 4)[None], axis=1)
    bad = noise.copy()
    bad[0, 100, 1] = np.nan
    x = np.concatenate([np.zeros((1, 3840, 2)), noise, bad]).astype(np.float32)
    before = x.copy()
    with np.errstate(all="raise"):  # no silent divisions by zero either
        f, names = handcrafted_features(x, PPG_RATE, "ppg")
    np.testing.assert_array_equal(x, before)  # the input is left alone
    flat, noisy, nonfinite = f
    for name in (
        "hr_bpm",
        "sdnn_ms",
        "rmssd_ms",
        "pnn50",
        "skew_ch0",
        "dominant_hz_ch0",
        "spectral_entropy_ch1",
    ):
        assert np.isnan(flat[names.index(name)]), name
    assert flat[names.index("beat_count")] == 0 and flat[names.index("beat_coverage")] == 0
    assert flat[names.index("p95_ch0")] == 0 and flat[names.index("zero_cross_hz_ch0")] == 0
    # Noise has no beats to speak of, but its statistics are all defined.
    stats_cols = [i for i, n in enumerate(names) if n not in BEAT_FEATURES]
    assert np.isfinite(noisy[stats_cols]).all()
    assert np.isnan(nonfinite).all()


def test_names_follow_channels_and_bands():
    x = np.random.default_rng(6).normal(size=(2, 3840, 4)).astype(np.float32)
    f, names = handcrafted_features(x, PPG_RATE, "ppg")
    assert f.shape == (2, len(names)) and f.dtype == np.float32
    assert len(set(names)) == len(names)
    assert names[: len(BEAT_FEATURES)] == list(BEAT_FEATURES)
    per_channel = (len(names) - len(BEAT_FEATURES)) // 4
    assert [sum(n.endswith(f"_ch{c}") for n in names) for c in range(5)] == [per_channel] * 4 + [0]
    f, names = handcrafted_features(x[..., :1], ECG_RATE, "ecg")
    assert f.shape == (2, len(names)) and names[-1] == "spectral_entropy_ch0"
    assert "power_16-40hz_ch0" in names
    _, names = handcrafted_features(x[..., :1], 64.0, "ecg")  # edges above Nyquist move to it
    assert "power_16-32hz_ch0" in names and not any("40hz" in n for n in names)
    with pytest.raises(ValueError, match="modality"):
        handcrafted_features(x, PPG_RATE, "eeg")


@pytest.mark.parametrize("modality", ["ppg", "ecg"])
def test_synthetic_cohort_heart_rate_and_rmssd_follow_the_generator(modality):
    participants = synthetic.sample_participants(0, 24)
    index, segment = np.arange(24), np.arange(24)
    if modality == "ppg":
        raw, info = synthetic.ppg_segments(0, participants, index, segment, return_info=True)
        spec = ModalitySpec("ppg", PPG_RATE, 60.0, 4, (0.5, 8.0))
    else:
        raw, info = synthetic.ecg_segments(0, participants, index, segment, return_info=True)
        spec = ModalitySpec("ecg", ECG_RATE, 30.0, 1, (0.5, 40.0))
    windows = preprocess_windows(raw, spec, None).signal
    f, names = handcrafted_features(windows, spec.sample_rate, modality, progress=True)
    hr, rmssd = column(f, names, "hr_bpm"), column(f, names, "rmssd_ms")
    # The generator's rate is the mean interval's, ours the median's: close, not equal.
    assert np.corrcoef(hr, info["heart_rate"])[0, 1] > 0.99
    assert np.median(np.abs(hr - info["heart_rate"])) < 1.0
    clean = ~info["motion"] & ~participants["af"].astype(bool)
    if modality == "ppg":  # a weak pulse (cold skin, a poor strap) misses beats, as on real
        clean &= info["pulse_amplitude"] > 0.8  # wrists: at 0.56 one RMSSD came out doubled
    assert np.corrcoef(rmssd[clean], info["rmssd"][clean])[0, 1] > 0.95
    assert np.median(np.abs(rmssd[clean] - info["rmssd"][clean])) < 3.0


def test_real_wrist_ppg_heart_rate_matches_the_device(shared_data):
    """Empatica E4 BVP: our rate against the device's own beat intervals (IBI.csv)."""
    folder = shared_data / "stress_predict" / "Raw_data" / "S05"
    if not (folder / "BVP.csv").is_file():
        pytest.skip(f"real E4 recordings not found at {folder}")
    from ahms_fm.data.preprocess import QualitySpec, segment_recording
    from ahms_fm.data.readers import read_e4_extras, read_e4_session

    rec, extras = read_e4_session(folder), read_e4_extras(folder)
    seg = segment_recording(rec, ModalitySpec("ppg", PPG_RATE, 60.0, 1, (0.5, 8.0)), QualitySpec())
    f, names = handcrafted_features(seg.signal[seg.kept], PPG_RATE, "ppg")
    ibi_time = extras["ibi"][:, 0] + extras["ibi_start"] - rec.start_time
    device = np.full(len(f), np.nan)
    for i, start in enumerate(seg.offset_s[seg.kept]):
        inside = extras["ibi"][(ibi_time >= start) & (ibi_time < start + 60), 1]
        if inside.sum() > 30:  # the device vouches for at least half the window
            device[i] = 60 / np.median(inside)
    ok = np.isfinite(device)
    assert ok.sum() >= 10
    error = np.abs(column(f, names, "hr_bpm")[ok] - device[ok])
    assert np.median(error) < 1.5 and error.max() < 5.0
