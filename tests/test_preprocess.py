"""Preprocessing: resampling, zero-phase band-pass, windows, z-scores, quality reasons."""

import numpy as np
import pytest
from scipy import signal as sps

from ahms_fm.data.preprocess import (
    ModalitySpec,
    QualitySpec,
    bandpass,
    estimate_heart_rate,
    preprocess_windows,
    resample,
    segment_array,
)
from ahms_fm.data.recording import DataError

PPG = ModalitySpec("ppg", 64.0, 60.0, 1, (0.5, 8.0))
ECG = ModalitySpec("ecg", 128.0, 30.0, 1, (0.5, 40.0))
Q = QualitySpec()


def pulse_train(rate, seconds, bpm, rng, noise=0.05):
    """A PPG-like wave: fundamental plus a second harmonic, with a little noise."""
    t = np.arange(round(rate * seconds)) / rate
    f = bpm / 60
    x = np.sin(2 * np.pi * f * t) + 0.4 * np.sin(4 * np.pi * f * t + 0.8)
    return x + noise * rng.normal(size=t.size)


def spike_train(rate, seconds, bpm, rng):
    """An ECG-like wave: narrow R spikes, a broad T wave, noise."""
    t = np.arange(round(rate * seconds)) / rate
    beats = np.arange(0.3, seconds, 60 / bpm)
    x = np.zeros_like(t)
    for b in beats:
        x += np.exp(-0.5 * ((t - b) / 0.01) ** 2)
        x += 0.3 * np.exp(-0.5 * ((t - b - 0.25) / 0.05) ** 2)
    return x + 0.02 * rng.normal(size=t.size)


def test_resample_matches_the_same_wave_sampled_at_the_target_rate():
    t_hi = np.arange(10_000) / 1000.0
    x = np.sin(2 * np.pi * 1.3 * t_hi)[:, None]
    y = resample(x, 1000.0, 64.0)
    assert y.shape == (640, 1)
    expected = np.sin(2 * np.pi * 1.3 * np.arange(640) / 64.0)
    np.testing.assert_allclose(y[20:-20, 0], expected[20:-20], atol=2e-3)
    z = resample(np.sin(2 * np.pi * 2.0 * np.arange(9000) / 300.0)[:, None], 300.0, 128.0)
    assert z.shape == (3840, 1)


@pytest.mark.parametrize("rate", [100.3, 100.29999977494391, 97.65625, 1000.7])
def test_any_positive_rate_resamples_onto_the_target_grid(rate):
    """Before: 100.3 Hz (or a rate estimated from timestamps) failed with 'cannot resample
    ... with a small ratio', killing the whole ingestion."""
    seconds = 60.0
    x = np.sin(2 * np.pi * 1.2 * np.arange(round(rate * seconds)) / rate)[:, None]
    y = resample(x, rate, 64.0)
    assert abs(len(y) - 64.0 * seconds) <= 2
    # The same wave sampled at 64 Hz: the time axis is right within the tolerance.
    expected = np.sin(2 * np.pi * 1.2 * np.arange(len(y)) / 64.0)
    np.testing.assert_allclose(y[64:-64, 0], expected[64:-64], atol=2e-2)


def test_a_preprocessing_failure_is_a_data_error_naming_the_file(monkeypatch):
    """Any library error inside preprocessing names the file (so on_error=skip skips it)."""
    from ahms_fm.data import preprocess
    from ahms_fm.data.recording import Recording

    def broken(*args, **kwargs):
        raise ValueError("filter exploded")

    monkeypatch.setattr(preprocess, "bandpass", broken)
    rec = Recording(
        "p1",
        "r1",
        pulse_train(64.0, 120, 70, np.random.default_rng(0))[:, None],
        64.0,
        "cohort/p1/r1.csv",
    )
    with pytest.raises(
        DataError,
        match="cohort/p1/r1.csv: preprocessing failed "
        r"\(ValueError: filter exploded\)",
    ):
        preprocess.segment_recording(rec, PPG, Q)


def test_resample_has_no_transient_at_the_ends_of_a_signal_on_an_offset():
    # Raw PPG sits on a large offset; zero padding would make the ends dip by ~the offset.
    t_hi = np.arange(6_000) / 100.0
    x = (2_000.0 + np.sin(2 * np.pi * 1.2 * t_hi))[:, None]
    y = resample(x, 100.0, 64.0)[:, 0]
    expected = 2_000.0 + np.sin(2 * np.pi * 1.2 * np.arange(len(y)) / 64.0)
    # (The polyphase filter's passband ripple is ~1.5e-4 of the offset: 0.3 here.)
    assert np.max(np.abs(y - expected)) < 1.0  # zero padding: 360 at the first sample


def test_bandpass_is_zero_phase_and_rejects_out_of_band():
    rate = 64.0
    t = np.arange(int(rate * 120)) / rate
    inband = np.sin(2 * np.pi * 1.5 * t)
    y = bandpass(inband[:, None], rate, (0.5, 8.0), 4)[:, 0]
    core = slice(640, -640)
    # Zero phase: the filtered wave lines up with the input (no lag), amplitude kept.
    lags = np.arange(-10, 11)
    xc = [np.dot(y[core], np.roll(inband, k)[core]) for k in lags]
    assert lags[int(np.argmax(xc))] == 0
    np.testing.assert_allclose(y[core], inband[core], atol=0.02)
    for f in (0.05, 20.0):  # baseline wander and high-frequency noise
        out = bandpass(np.sin(2 * np.pi * f * t)[:, None], rate, (0.5, 8.0), 4)[core]
        assert np.std(out) < 0.02


def test_windows_offsets_and_zscore():
    rng = np.random.default_rng(0)
    x = pulse_train(100.0, 630.0, 70, rng) * 50 + 1000  # raw units, offset
    s = segment_array(x, 100.0, PPG, Q)
    assert s.signal.shape == (10, 3840, 1) and s.signal.dtype == np.float32
    np.testing.assert_allclose(s.offset_s, np.arange(10) * 60.0)
    np.testing.assert_allclose(s.signal.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(s.signal.std(axis=1), 1, atol=1e-3)
    assert s.kept.all() and s.rejected_counts() == {}
    hop = segment_array(x, 100.0, PPG, Q, hop_seconds=30.0)
    assert len(hop.reason) == 20
    np.testing.assert_allclose(hop.signal[2], s.signal[1], atol=1e-5)  # same window


def test_heart_rate_of_irregular_rhythm_from_peak_intervals():
    """Atrial-fibrillation-like beats (random intervals): no clear period, rate still right."""
    rng = np.random.default_rng(3)
    for ecg in (False, True):
        rate, seconds = (128.0, 30.0) if ecg else (64.0, 60.0)
        t = np.arange(int(rate * seconds)) / rate
        beats = np.cumsum(np.maximum(0.35, rng.normal(0.75, 0.2, size=200)))
        beats = beats[beats < seconds - 0.2]
        width = 0.01 if ecg else 0.12
        x = np.exp(-0.5 * ((t[:, None] - beats) / width) ** 2).sum(1)
        x += 0.03 * rng.normal(size=t.size)
        est, periodicity = estimate_heart_rate(x[None, :, None], rate, "ecg" if ecg else "ppg")
        truth = 60.0 / np.median(np.diff(beats))
        assert periodicity[0] < 0.5 and abs(est[0] - truth) < 0.1 * truth


@pytest.mark.parametrize("bpm", [42, 75, 130, 190])
def test_heart_rate_of_pulse_and_spike_trains(bpm):
    rng = np.random.default_rng(bpm)
    ppg = pulse_train(64.0, 60.0, bpm, rng)[None, :, None]
    est, periodicity = estimate_heart_rate(ppg, 64.0, "ppg")
    assert abs(est[0] - bpm) < 0.01 * bpm and periodicity[0] > 0.8
    ecg = spike_train(128.0, 30.0, bpm, rng)[None, :, None]
    est, _ = estimate_heart_rate(ecg, 128.0, "ecg")
    assert abs(est[0] - bpm) < 0.01 * bpm


def test_heart_rate_of_real_ecg_matches_r_peak_count(shared_data):
    """CinC 2017 record A00001 (normal rhythm): rate vs R peaks found independently."""
    from scipy.io import loadmat

    path = shared_data / "cinc2017" / "A00001.mat"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    x = loadmat(path)["val"][0].astype(float) / 1000.0  # mV at 300 Hz
    s = segment_array(x, 300.0, ECG, Q)
    y = bandpass(resample(x[:, None], 300.0, 128.0), 128.0, (5.0, 20.0), 2)[:3840, 0]
    peaks, _ = sps.find_peaks(y, height=0.5 * y.max(), distance=40)
    reference = 60.0 / np.median(np.diff(peaks) / 128.0)
    assert s.kept[0] and abs(s.heart_rate[0] - reference) < 3


def _reasons(x, rate=64.0, **kw):
    return list(segment_array(x, rate, PPG, Q, **kw).reason)


def test_each_quality_reason():
    rng = np.random.default_rng(1)
    base = pulse_train(64.0, 360.0, 70, rng)
    x = base.copy()
    x[64 * 70 : 64 * 80] = 0.25  # window 1: 10 s flat (17% of the window)
    x[64 * 125] = np.nan  # window 2: one NaN
    x[64 * 180 : 64 * 240] = np.clip(3 * base[64 * 180 : 64 * 240], -1.2, 1.2)  # 3: saturated
    x[64 * 240 : 64 * 300] = pulse_train(64.0, 60.0, 250, rng)  # window 4: 250 bpm
    assert _reasons(x) == ["", "flat", "nonfinite", "clipped", "heart_rate", ""]

    slow = pulse_train(64.0, 60.0, 25, rng)  # a period the search finds, but implausible
    assert _reasons(slow) == ["heart_rate"]

    accel = np.tile([0.0, 0.0, 1.0], (32 * 120, 1))  # 32 Hz, at rest ...
    accel[32 * 60 :, 2] += 0.5 * np.sin(2 * np.pi * 2.0 * np.arange(32 * 60) / 32)  # shaking
    assert _reasons(base[: 64 * 120], accel=accel, accel_rate=32.0) == ["", "motion"]


def test_too_short_and_wrong_channels_and_no_quality():
    s = segment_array(np.zeros(64 * 59), 64.0, PPG, Q)
    assert s.signal.shape == (0, 3840, 1) and s.rejected_counts() == {"too_short": 1}
    with pytest.raises(DataError, match=r"my\.csv.*2 channel"):
        segment_array(np.zeros((5000, 2)), 64.0, PPG, Q, source="my.csv")
    x = np.random.default_rng(0).normal(size=64 * 60)
    assert list(segment_array(x, 64.0, PPG, None).reason) == [""]  # only non-finite checked


def test_a_short_exam_is_padded_only_under_the_pad_policy():
    """A 10 s ECG exam (500 Hz, 72 bpm) against 30 s windows at 128 Hz: rejected by
    default; with max_pad_fraction >= 2/3 one window, its first 10 s the exam (z-scored on
    its own samples, heart rate from them) and 20 s of zeros, recorded as pad_s."""
    exam = spike_train(500.0, 10.0, 72, np.random.default_rng(3))
    assert segment_array(exam, 500.0, ECG, Q).too_short
    assert segment_array(exam, 500.0, ECG, Q, max_pad_fraction=0.6).too_short  # lacks 2/3
    s = segment_array(exam, 500.0, ECG, Q, max_pad_fraction=0.7)
    assert not s.too_short and list(s.reason) == [""] and s.signal.shape == (1, 3840, 1)
    assert s.pad_s[0] == pytest.approx(20.0, abs=1 / 128)
    real = s.signal[0, :1280, 0]
    assert abs(real.mean()) < 1e-3 and abs(real.std() - 1.0) < 1e-3
    assert not s.signal[0, 1281:].any()
    assert s.heart_rate[0] == pytest.approx(72.0, abs=2.0)
    # The kept part equals an unpadded 10 s window's preprocessing of the same exam.
    ten = ModalitySpec("ecg", 128.0, 10.0, 1, (0.5, 40.0))
    np.testing.assert_allclose(real, segment_array(exam, 500.0, ten, Q).signal[0, :, 0], atol=1e-5)
    assert segment_array(np.zeros(64 * 59), 64.0, PPG, Q).pad_s.shape == (0,)
    with pytest.raises(ValueError, match="max_pad_fraction"):
        segment_array(exam, 500.0, ECG, Q, max_pad_fraction=1.0)


def test_preprocess_windows_batch_matches_the_recording_path_on_one_window():
    rng = np.random.default_rng(2)
    raw = np.stack([pulse_train(64.0, 60.0, bpm, rng) for bpm in (55, 80, 120)])[..., None]
    raw[1, 1000:2000] = 3.0  # a 15.6 s flat stretch: rejected
    batch = preprocess_windows(raw.astype(np.float32), PPG, Q)
    assert list(batch.reason) == ["", "flat", ""]
    for i in (0, 2):
        one = segment_array(raw[i], 64.0, PPG, Q)
        np.testing.assert_allclose(batch.signal[i], one.signal[0], atol=2e-3)
        assert abs(batch.heart_rate[i] - one.heart_rate[0]) < 0.5


def test_modality_spec_round_trip_and_mismatch_message():
    spec = ModalitySpec("ppg", 64.0, 60.0, 4, (0.5, 8.0))
    assert ModalitySpec.from_dict(spec.to_dict()) == spec
    other = ModalitySpec("ppg", 128.0, 60.0, 1, (0.5, 8.0))
    with pytest.raises(DataError, match=r"ckpt: .*sample_rate: expected 64.0, got 128.0.*channels"):
        spec.check_matches(other, "ckpt")


def test_vectorized_flat_runs_match_a_run_by_run_count():
    from ahms_fm.data.preprocess import _flat_fraction

    rng = np.random.default_rng(4)
    for _ in range(50):
        x = np.round(rng.normal(size=(3, 2, 300)) * rng.uniform(0.2, 3)).astype(np.float32)
        x[:, :, 50 : 50 + rng.integers(0, 80)] = 1.0
        min_run = int(rng.integers(2, 12))
        expected = []
        for window in x:  # runs of identical values, walked one by one
            covered = np.zeros(300, bool)
            for channel in window:
                start = 0
                for j in range(1, 301):
                    if j == 300 or channel[j] != channel[start]:
                        if j - start >= min_run:
                            covered[start:j] = True
                        start = j
            expected.append(covered.mean())
        np.testing.assert_allclose(_flat_fraction(x, min_run), expected)


def test_overflowing_amplitudes_are_rejected_by_name_without_numpy_warnings():
    """Before: 1e300 amplitudes became NaN in filtering and were rejected as 'heart_rate',
    after pages of RuntimeWarnings."""
    import warnings

    x = 1e300 * pulse_train(64.0, 130, 70, np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any NumPy warning fails the test
        with pytest.raises(
            DataError,
            match=r"big.csv: amplitudes out of range: \|value\| up "
            r"to 1\.\d+e\+300",
        ):
            segment_array(x, 64.0, PPG, Q, source="big.csv")
