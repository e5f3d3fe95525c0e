"""PPG recipe: 4 channels, 60 s at 64 Hz, expansion 7 (3,146,129 parameters).

ahms-fm train --config ppg[:runlocal,...] --workdir DIR     (or configs/ppg.py in a checkout)
"""

from ahms_fm.configs import common


def get_config(arg=None):
    c = common.recipe()
    c.modality = "ppg"
    c.input.sample_rate = 64.0
    c.input.window_seconds = 60.0
    c.input.channels = 4
    c.input.band_hz = (0.5, 8.0)
    c.model.expansion = 7
    c.augment.cut_out.p = 0.40
    c.augment.magnitude_warp.p = 0.25
    c.augment.time_warp.p = 0.15
    c.augment.gaussian_noise.p = 0.25
    c.augment.channel_permute.p = 0.25
    c.data.dataset = "synthetic_ppg"
    return common.finish(c, arg, VARIANTS)


def _stress_predict(c):
    """Empatica E4 wrist PPG (one BVP channel at 64 Hz, with accelerometer)."""
    c.data.dataset = "stress_predict"
    c.data.source_dir = "../shared/data/stress_predict"
    c.input.channels = 1
    c.augment.channel_permute.p = 0.0


def _ppg_bp(c):
    """PPG-BP finger PPG: 2.1 s recordings at 1 kHz, so 2 s windows of one channel."""
    c.data.dataset = "ppg_bp"
    c.data.source_dir = "../shared/data/ppg_bp"
    c.input.channels = 1
    c.input.window_seconds = 2.0
    c.augment.channel_permute.p = 0.0


VARIANTS = {"stress_predict": _stress_predict, "ppg_bp": _ppg_bp}
