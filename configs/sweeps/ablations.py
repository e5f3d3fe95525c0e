"""By path, for `--sweep configs/sweeps/ablations.py` in a checkout: the sweep is
ahms_fm/configs/sweeps/ablations.py (also `--sweep ablations` anywhere)."""

from ahms_fm.configs.sweeps.ablations import get_sweep

__all__ = ["get_sweep"]
