"""Recordings -> a TFDS dataset (ArrayRecord), with a progress bar and a summary.

    python -m ahms_fm.ingest --config configs/ppg.py[:variant] [--config.key=value ...]
    ahms-fm ingest --config configs/ecg.py:cinc2017

The config's `data.dataset` picks the source (`synthetic_ppg`, `synthetic_ecg`,
`stress_predict`, `ppg_bp`, `cinc2017`, or any other name for a bring-your-own
folder described by `data.byo_spec`); `input`, `preprocess` and `quality` say
how recordings become segments. The dataset goes to `data.data_dir`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import app, flags, logging
from tqdm.auto import tqdm

from ahms_fm import cli_help, config_utils
from ahms_fm.data import dataset, sources, synthetic, write
from ahms_fm.data.preprocess import REASONS, ModalitySpec, QualitySpec


def source_from_config(config) -> dataset.Source:
    """The `Source` that `config.data` describes."""
    spec, quality = ModalitySpec.from_config(config), QualitySpec.from_config(config)
    d = config.data
    if sources.is_synthetic(config):
        return sources.synthetic_source(
            spec,
            quality,
            participants=d.participants,
            segments_per_participant=d.segments_per_participant,
            seed=d.synthetic_seed,
        )
    kwargs = dict(
        hop_seconds=config.preprocess.hop_seconds,
        on_error=d.on_error,
        max_pad_fraction=config.preprocess.max_pad_fraction,
    )
    if d.dataset in sources.PUBLIC:
        if not d.source_dir:
            raise ValueError(f"data.source_dir must point at the {d.dataset} download")
        return sources.PUBLIC[d.dataset](d.source_dir, spec, quality, **kwargs)
    if not d.byo_spec:
        raise ValueError(
            f"unknown dataset {d.dataset!r}: use synthetic_{config.modality}, one of "
            f"{sorted(sources.PUBLIC)}, or describe your own folder with data.byo_spec"
        )
    return sources.byo_source(d.dataset, d.source_dir, d.byo_spec, spec, quality, **kwargs)


def fingerprint(config) -> dict:
    """Everything a dataset's build depends on, as JSON: the source (its folder, resolved;
    a bring-your-own spec's contents), the synthetic cohort's size and seed, and how
    recordings become segments (`input`, `preprocess`, `quality`, `data.on_error`)."""
    d = config.data
    out = {
        "dataset": d.dataset,
        "modality": config.modality,
        "input": config.input.to_dict(),
        "preprocess": config.preprocess.to_dict(),
        "quality": config.quality.to_dict(),
        "on_error": d.on_error,
        "splits": [dataset.SPLIT_RULE, *dataset.SPLIT_FRACTIONS],
    }
    if sources.is_synthetic(config):
        out["synthetic"] = {
            "participants": d.participants,
            "seed": d.synthetic_seed,
            "version": synthetic.VERSION,
            "segments_per_participant": d.segments_per_participant,
        }
    else:
        out["source_dir"] = str(Path(d.source_dir).resolve()) if d.source_dir else ""
        if d.byo_spec:
            out["byo_spec"] = (
                Path(d.byo_spec).read_text() if Path(d.byo_spec).is_file() else d.byo_spec
            )
    return json.loads(json.dumps(out, default=list))


def ingest(config, *, overwrite: bool = False, progress: bool = True) -> Path:
    """Build the dataset `config` describes (reused if it exists and was built from the
    same inputs; refused, naming the differences, if not); returns its folder."""
    config_utils.validate(config)
    source = source_from_config(config)
    spec = ModalitySpec.from_config(config)
    bar = tqdm(
        total=len(source.participants),
        unit="participant",
        disable=not progress,
        desc=f"ingest {source.name}",
    )
    try:
        path = write.build(
            source,
            spec,
            config.data.data_dir,
            overwrite=overwrite,
            fingerprint=fingerprint(config),
            storage_dtype=config.preprocess.storage_dtype,
            progress=bar.update,
        )
    finally:
        bar.close()
    return path


def format_summary(path) -> str:
    """The ingestion summary stored with a dataset, as lines of text."""
    meta = dataset.load_metadata(path)
    s = meta["summary"]
    rejected = s["rejected"]
    total_rejected = sum(rejected.values())
    split_counts = s["split_segments"]
    lines = [
        f"dataset: {path}",
        f"participants: {s['participants']} ({s['participants_with_segments']} with segments)",
        f"segments kept: {s['segments_kept']}  "
        + "  ".join(f"{k} {n}" for k, n in split_counts.items()),
        f"segments rejected: {total_rejected}"
        + (
            "  (" + ", ".join(f"{r} {rejected[r]}" for r in REASONS if rejected.get(r)) + ")"
            if total_rejected
            else ""
        ),
    ]
    for key, why in (
        ("no_recordings", "without a recording read"),
        ("all_rejected", "with every window rejected"),
    ):
        if s.get(key):  # datasets built before these were listed have neither
            shown = ", ".join(s[key][:10]) + (", ..." if len(s[key]) > 10 else "")
            lines.append(f"participants {why}: {len(s[key])} ({shown})")
    if s["errors"]:
        lines.append(f"files skipped: {len(s['errors'])}")
        lines += [f"  {p}: {why}" for p, why in s["errors"]]
    return "\n".join(lines)


def run(argv=None):
    """Command line (flags are defined here, so importing this module defines none)."""
    overwrite = flags.DEFINE_bool("overwrite", False, "Rebuild even if the dataset exists.")
    argv = argv or sys.argv
    if cli_help.wants_help(argv):
        cli_help.print_help(
            argv,
            __name__,
            "Build the dataset a config describes (TFDS, "
            "ArrayRecord) from recordings or the synthetic cohort.",
            [
                "ahms-fm ingest --config ecg:cinc2017,study",
                "ahms-fm ingest --config ppg --config.data.dataset="
                "my_cohort --config.data.source_dir=recordings "
                "--config.data.byo_spec=recordings/cohort.json",
            ],
        )
    spec, overrides, rest = config_utils.split_argv(argv)
    config = config_utils.load_required(spec, overrides, "ahms-fm ingest --config ppg:demo")

    def main(argv):
        del argv
        logging.set_verbosity(logging.WARNING)  # TFDS logs every shard it writes
        path = ingest(config, overwrite=overwrite.value)
        print(format_summary(path))

    app.run(main, argv=rest)


if __name__ == "__main__":
    run()
