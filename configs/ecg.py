"""The ECG recipe by path, for `--config configs/ecg.py[:variants]` in a checkout: the
config itself is ahms_fm/configs/ecg.py (also `--config ecg[:variants]` anywhere)."""

from ahms_fm.configs.ecg import VARIANTS, get_config

__all__ = ["VARIANTS", "get_config"]
