"""By path, for `--sweep configs/sweeps/positives.py` in a checkout: the sweep is
ahms_fm/configs/sweeps/positives.py (also `--sweep positives` anywhere)."""

from ahms_fm.configs.sweeps.positives import get_sweep

__all__ = ["get_sweep"]
