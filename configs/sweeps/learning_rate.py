"""By path, for `--sweep configs/sweeps/learning_rate.py` in a checkout: the sweep is
ahms_fm/configs/sweeps/learning_rate.py (also `--sweep learning_rate` anywhere)."""

from ahms_fm.configs.sweeps.learning_rate import get_sweep

__all__ = ["get_sweep"]
