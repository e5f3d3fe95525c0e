"""The configs: the paper's recipe in numbers (`common.recipe`), the PPG and ECG models
(`ppg`, `ecg`) with their variants, and the sweeps (`sweeps/`). Shipped in the package,
so `--config ppg:demo` works after any install; `configs/*.py` in a checkout loads the
same ones by path. Load one with `ahms_fm.config_utils.load`.
"""
