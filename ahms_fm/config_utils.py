"""Loading configs (`load`, `resolve`) and checking them (`validate`); the configs
themselves, every number, are in `ahms_fm/configs/`.

A config is named by a file, `configs/ppg.py:study` (variants after the colon), or by
its name in the package, `ppg:study`; `resolve` turns either into the file's path.
"""

from __future__ import annotations

import os
import shlex
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ml_collections

# Only the standard library at import (the launchers use `resolve` without JAX or
# ml_collections installed); `load` imports what parsing needs.
PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"


def packaged(name: str, folder: Path = PACKAGE_CONFIGS) -> Path | None:
    """`folder/<name>.py` where `name` is a bare name or ends in `configs/<name>.py`."""
    stem = Path(name).stem if name.endswith(".py") else name
    if "/" in name.replace(os.sep, "/") and Path(name).parent.name not in ("configs", "sweeps"):
        return None
    found = folder / f"{stem}.py"
    return found if stem and not stem.startswith("_") and found.is_file() else None


def packaged_names(folder: Path = PACKAGE_CONFIGS) -> list[str]:
    """The names of the configs (or sweeps) shipped in `folder`."""
    return sorted(p.stem for p in folder.glob("[!_]*.py"))


def resolve(spec: str, folder: Path = PACKAGE_CONFIGS) -> str:
    """`file.py[:variants]` or `name[:variants]` -> an existing file's absolute path, with
    the variants. A path that does not exist here but names a packaged config
    (`configs/ppg.py` outside a checkout) is the packaged one."""
    path, sep, variants = str(spec).partition(":")
    if not os.path.isfile(path):
        found = packaged(path, folder)
        if found is None:
            raise ConfigError(
                f"no config file {path!r}, and no packaged config of that name "
                f"(packaged: {', '.join(packaged_names(folder))})"
            )
        path = str(found)
    return f"{os.path.abspath(path)}{sep}{variants}"


def load(spec: str, overrides=()) -> ml_collections.ConfigDict:
    """The config `spec` names (`resolve`), with `overrides` applied as the command line
    applies `--config.KEY=VALUE` (the same parser): a dict {key: value} or "key=value"
    strings. Validated (`validate`). Every problem is a `ConfigError` of one line that
    names the config, the overrides and what is wrong (a misspelt key, a bad value)."""
    from absl import flags
    from ml_collections import config_flags

    if isinstance(overrides, dict):
        overrides = [f"{k}={v}" for k, v in overrides.items()]
    flags_ = [f"--config.{o.removeprefix('--config.')}" for o in overrides]
    argv = ["load", f"--config={resolve(spec)}", *flags_]
    values = flags.FlagValues()
    handle = config_flags.DEFINE_config_file("config", None, "", flag_values=values, sys_argv=argv)
    try:
        with warnings.catch_warnings():  # ml_collections loads files with load_module()
            warnings.filterwarnings("ignore", "the load_module", DeprecationWarning)
            values(argv)
        config = handle.value
    except Exception as e:  # the flag parser wraps the config's errors: keep the point
        raise ConfigError(
            f"{shlex.join(['--config', str(spec), *flags_])}: {_the_point(e)}"
        ) from None
    validate(config)
    return config


def _the_point(e: BaseException) -> str:
    """One line of what went wrong, from the flag parser's nested exceptions."""
    while e.args and isinstance(e.args[0], BaseException):  # ConfigDict: AttributeError
        e = e.args[0]  # wrapping a KeyError (a misspelt key) that suggests the right one
    message = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip()
    lines = message.splitlines()
    message = lines[-1] if "Traceback" in message else " ".join(lines)
    return f"unknown key {message}" if isinstance(e, KeyError) else message


def load_required(spec: str | None, overrides, example: str) -> ml_collections.ConfigDict:
    """`load`, with a missing `--config` said as a `ConfigError` with an example."""
    if not spec:
        raise ConfigError(f"--config is required (a config name or file, e.g. `{example}`)")
    return load(spec, overrides)


def split_argv(argv: list[str]) -> tuple[str | None, list[str], list[str]]:
    """(the `--config` value, its `--config.KEY=VALUE` overrides as "KEY=VALUE", the other
    arguments): the command line's config part, for `load`."""
    spec, overrides, rest = None, [], []
    args = iter(argv)
    for a in args:
        if a == "--config":
            spec = next(args, None)
        elif a.startswith("--config="):
            spec = a.split("=", 1)[1]
        elif a.startswith("--config."):
            overrides.append(a.removeprefix("--config."))
        else:
            rest.append(a)
    return spec, overrides, rest


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


class ConfigError(ValueError):
    """A config value out of its range: the message names the key, the value and the rule."""


# (dotted key, rule, what the rule says). Checked once, where a config is used (after
# command-line overrides): `validate`.
_RULES = [
    ("num_steps", lambda v: v >= 1, "a positive integer"),
    ("batch_size", lambda v: v >= 2, "at least 2 (a contrastive batch needs negatives)"),
    ("log_every_steps", lambda v: v >= 1, "a positive integer"),
    ("eval_every_steps", lambda v: v >= 1, "a positive integer"),
    ("eval_batches", lambda v: v >= 1, "a positive integer"),
    ("checkpoint_every_steps", lambda v: v >= 1, "a positive integer"),
    ("keep_checkpoints", lambda v: v >= 1, "a positive integer"),
    ("keep_every_steps", lambda v: v >= 0, "0 (off) or a positive integer"),
    ("input.sample_rate", lambda v: v > 0, "a positive rate in Hz"),
    ("input.window_seconds", lambda v: v > 0, "positive"),
    ("input.segment_length", lambda v: v >= 1, "positive (sample_rate x window_seconds)"),
    ("input.channels", lambda v: v >= 1, "a positive integer"),
    ("loss.temperature", lambda v: v > 0, "positive"),
    ("loss.koleo_weight", lambda v: v >= 0, "0 or positive"),
    ("loss.positives", lambda v: v in ("participant", "segment"), "'participant' or 'segment'"),
    ("loss.name", lambda v: v in ("infonce_koleo", "byol"), "'infonce_koleo' or 'byol'"),
    ("teacher.kind", lambda v: v in ("ema", "none"), "'ema' or 'none'"),
    ("teacher.momentum", lambda v: 0 <= v <= 1, "between 0 and 1"),
    ("optimizer.learning_rate", lambda v: v > 0, "positive"),
    ("optimizer.weight_decay", lambda v: v >= 0, "0 or positive"),
    ("optimizer.adam_eps", lambda v: v > 0, "positive"),
    ("optimizer.grad_clip_norm", lambda v: v >= 0, "0 (off) or positive"),
    ("schedule.warmup_steps", lambda v: v >= 0, "0 or a positive integer"),
    ("schedule.halve_every_steps", lambda v: v >= 1, "a positive integer"),
    ("head.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("model.embed_dim", lambda v: v >= 1, "a positive integer"),
    ("data.participants", lambda v: v >= 1, "a positive integer"),
    ("data.segments_per_participant", lambda v: v >= 1, "a positive integer"),
    ("data.on_error", lambda v: v in ("raise", "skip"), "'raise' or 'skip'"),
    ("preprocess.max_pad_fraction", lambda v: 0 <= v < 1, "in [0, 1): 0 rejects short recordings"),
    ("data.sample_by", lambda v: v in ("segment", "participant"), "'segment' or 'participant'"),
    ("probe.folds", lambda v: v >= 2, "at least 2"),
    ("probe.n_boot", lambda v: v >= 1, "a positive integer"),
    ("probe.level", lambda v: 0 < v < 1, "between 0 and 1"),
    ("probe.every_steps", lambda v: v >= 0, "0 (off) or a positive integer"),
    ("probe.num_strengths", lambda v: v >= 1, "a positive integer"),
    ("probe.random_seeds", lambda v: v >= 0, "0 or a positive integer"),
]
_AUGMENT_PROBABILITIES = (
    "cut_out",
    "magnitude_warp",
    "time_warp",
    "gaussian_noise",
    "channel_permute",
)


def _get(config, key: str):
    node = config
    for part in key.split("."):
        if part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def validate(config, what: str = "config") -> None:
    """Refuse a config with a value out of range, naming every such key at once.

    Called where a config starts being used (training, ingestion), after overrides; keys a
    config does not have (older or partial configs) are not checked."""
    problems = []
    rules = list(_RULES) + [
        (f"augment.{a}.p", lambda v: 0 <= v <= 1, "a probability in [0, 1]")
        for a in _AUGMENT_PROBABILITIES
    ]
    for key, ok, rule in rules:
        value = _get(config, key)
        if value is _MISSING:
            continue
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            problems.append(f"{key} must be {rule}, got {value!r}")
    if problems:
        raise ConfigError(f"{what}: " + "; ".join(problems))


# Keys a resumed run may change: when and what it logs, evaluates and keeps, where the
# data lives, how it is read. Anything else would make the resumed run a different one.
RESUMABLE = (
    "num_steps",
    "log_every_steps",
    "eval_every_steps",
    "eval_batches",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "keep_every_steps",
    "best_metric",
    "probe.*",
    "data.data_dir",
    "data.source_dir",
    "data.num_workers",
    "data.prefetch",
)


def flatten(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_differences(saved: dict, now: dict) -> tuple[list[str], list[str]]:
    """(refused, allowed): "key: saved -> now" for each key whose value differs between
    the config a run was saved with and the one it is resumed with (JSON dicts). A key
    only one of them has (the code added or removed it since) is allowed: no user can
    add keys to a locked config."""
    import fnmatch

    a, b = flatten(saved), flatten(now)
    refused, allowed = [], []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            allowed.append(
                f"{key}: {'not in the checkpoint' if key in b else 'no longer'} a config key"
            )
            continue
        if a[key] == b[key]:
            continue
        line = f"{key}: {a[key]!r} -> {b[key]!r}"
        (allowed if any(fnmatch.fnmatchcase(key, p) for p in RESUMABLE) else refused).append(line)
    return refused, allowed
