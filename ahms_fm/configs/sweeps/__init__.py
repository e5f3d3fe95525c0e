"""Sweep files for `ahms-fm sweep --sweep NAME` (or a path): each defines `get_sweep()`."""
