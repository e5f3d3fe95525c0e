"""ECG recipe: Lead I, 30 s at 128 Hz (from 512 Hz), expansion 6 (2,468,755 parameters).

ahms-fm train --config ecg[:runlocal,...] --workdir DIR     (or configs/ecg.py in a checkout)
"""

from ahms_fm.configs import common


def get_config(arg=None):
    c = common.recipe()
    c.modality = "ecg"
    c.input.sample_rate = 128.0
    c.input.window_seconds = 30.0
    c.input.channels = 1
    c.input.band_hz = (0.5, 40.0)
    c.model.expansion = 6
    c.augment.cut_out.p = 0.80
    c.augment.magnitude_warp.p = 0.50
    c.augment.time_warp.p = 0.30
    c.augment.gaussian_noise.p = 0.50
    c.augment.channel_permute.p = 0.0  # one lead: nothing to permute
    c.data.dataset = "synthetic_ecg"
    return common.finish(c, arg, VARIANTS)


def _cinc2017(c):
    """PhysioNet/CinC 2017 AliveCor single-lead ECG (300 Hz, 9-61 s; 30 s windows)."""
    c.data.dataset = "cinc2017"
    c.data.source_dir = "../shared/data/cinc2017"


VARIANTS = {"cinc2017": _cinc2017}
