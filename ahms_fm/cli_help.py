"""Help text for the absl-based subcommands (train, ingest, probe): their own flags with
defaults and an example, not the hundreds that absl and JAX define besides."""

from __future__ import annotations

import sys


def wants_help(argv) -> bool:
    return any(a in ("-h", "--help", "--helpshort") for a in argv[1:])


def print_help(argv, module: str, summary: str, examples: list[str]) -> None:
    """Print `summary`, the flags `module` defined (absl's own help text for each, with
    its default) and the examples, then exit 0."""
    from absl import flags

    program = argv[0] if argv else "ahms-fm"
    lines = [f"usage: {program} [flags]", "", summary, "", "flags:"]
    for flag in sorted(flags.FLAGS.get_flags_for_module(module), key=lambda f: f.name):
        default = "" if flag.default is None else f" (default: {flag.default!r})"
        lines.append(f"  --{flag.name}: {flag.help}{default}")
    if module.endswith(("main", "ingest")):
        lines.append(
            "  --config: the config, a name or file with variants, e.g. ppg:demo, "
            "ecg:cinc2017,study or configs/ppg.py:runlocal (required)"
        )
        lines.append(
            "  --config.KEY=VALUE: change one config key, e.g. "
            "--config.num_steps=300 (docs/configs.md lists every key)"
        )
    lines += ["", "examples:", *(f"  {e}" for e in examples)]
    print("\n".join(lines))
    sys.exit(0)
