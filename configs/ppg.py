"""The PPG recipe by path, for `--config configs/ppg.py[:variants]` in a checkout: the
config itself is ahms_fm/configs/ppg.py (also `--config ppg[:variants]` anywhere)."""

from ahms_fm.configs.ppg import VARIANTS, get_config

__all__ = ["VARIANTS", "get_config"]
