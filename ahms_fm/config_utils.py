"""Helpers for the ml_collections configs in `configs/` (code only, no numbers)."""

from __future__ import annotations

import importlib.util
import os
import sys

import ml_collections


def import_sibling(config_file: str, name: str):
    """Import `name`.py from the folder of `config_file` (configs are loaded by path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
    module_name = f"ahms_fm_configs_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def parse_variants(arg: str | None, known) -> list[str]:
    """Split 'runlocal,no_koleo' into names, refusing any that is not in `known`."""
    names = [a.strip() for a in (arg or "").split(",") if a.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown config variant(s) {unknown}; known: {sorted(known)}")
    return names


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Lock the structure: setting or overriding a key that does not exist is an error."""
    config.lock()
    return config
