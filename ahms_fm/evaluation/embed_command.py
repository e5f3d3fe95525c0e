"""`ahms-fm embed`: a checkpoint's embeddings of a folder of recordings (or of a prepared
dataset) -> one Parquet file.

    ahms-fm embed --checkpoint runs/ecg --folder exams/ --spec exams/cohort.json \\
        --out exams.parquet
    ahms-fm embed --checkpoint runs/ppg --dataset datasets/synthetic_ppg/... --out all.parquet

Rows are windows: participant, recording, segment, offset_s, pad_s, heart_rate, quality
and the embedding (`parquet.read_embeddings` reads it back). Recordings are preprocessed
exactly as `embed()` does (the checkpoint's rate, window, band, quality checks and pad
policy); windows failing a check, recordings shorter than a window and files that cannot be
read are counted by reason in the summary printed at the end and stored in the file's
metadata with the checkpoint's modality spec.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ahms_fm.data import dataset, readers
from ahms_fm.data.preprocess import REASONS
from ahms_fm.data.recording import DataError
from ahms_fm.evaluation import embeddings, parquet

CHUNK_WINDOWS = 1024  # windows gathered from many recordings, then embedded together


def embed_folder(
    encoder: embeddings.Encoder,
    root,
    spec,
    *,
    on_error: str = "raise",
    batch_size: int = 256,
    progress: bool = True,
):
    """(table, summary) of every window of the recordings `spec` (a `ByoSpec`, dict or JSON
    path) finds under `root`, embedded by `encoder`; the summary counts rejections by
    reason, lists recordings too short for a window and files skipped (`on_error="skip"`)."""
    import pandas as pd

    if isinstance(spec, (str, Path)):
        spec = readers.ByoSpec.from_json(spec)
    elif isinstance(spec, dict):
        spec = readers.ByoSpec.from_dict(spec)
    errors: list = []
    rows, windows, parts = [], [], []
    summary = {
        "recordings": 0,
        "windows": 0,
        "kept": 0,
        "rejected": dict.fromkeys(REASONS, 0),
        "too_short": [],
        "errors": errors,
    }
    bar = tqdm(unit="recording", desc="embed", disable=not progress)

    def flush():
        if windows:
            parts.append(encoder.embed_windows(np.concatenate(windows), batch_size=batch_size))
            windows.clear()

    for rec in readers.scan_folder(root, spec, on_error=on_error, errors=errors):
        try:
            s = embeddings.segments_for(encoder, rec)
        except DataError as e:
            if on_error == "raise":
                raise
            errors.append((e.path, e.problem))
            continue
        summary["recordings"] += 1
        summary["windows"] += len(s.reason)
        if s.too_short:
            summary["too_short"].append(rec.recording)
        for r, n in s.rejected_counts().items():
            summary["rejected"][r] += n
        for i in np.flatnonzero(s.kept):
            rows.append(
                {
                    "participant": rec.participant,
                    "recording": rec.recording,
                    "segment": int(i),
                    "offset_s": float(s.offset_s[i]),
                    "pad_s": float(s.pad_s[i]),
                    "heart_rate": float(s.heart_rate[i]),
                    "quality": float(s.quality[i]),
                }
            )
        windows.append(s.signal[s.kept])
        if sum(len(w) for w in windows) >= CHUNK_WINDOWS:
            flush()
        bar.update(1)
    flush()
    bar.close()
    summary["kept"] = len(rows)
    table = pd.DataFrame(
        rows,
        columns=[
            "participant",
            "recording",
            "segment",
            "offset_s",
            "pad_s",
            "heart_rate",
            "quality",
        ],
    )
    z = np.concatenate(parts) if parts else np.zeros((0, encoder.embed_dim), np.float32)
    table["embedding"] = list(z)
    return table, summary


def embed_dataset(
    encoder: embeddings.Encoder,
    path,
    splits=dataset.SPLITS,
    *,
    batch_size: int = 256,
    progress: bool = True,
):
    """(table, summary) of every record of a prepared dataset's `splits`."""
    import pandas as pd

    tables = [
        embeddings.embed_split(
            encoder, dataset.load_split(path, s), batch_size=batch_size, progress=progress
        )
        for s in splits
    ]
    table = pd.concat(tables, ignore_index=True)
    meta = dataset.load_metadata(path)
    return table, {
        "dataset": str(path),
        "splits": list(splits),
        "windows": len(table),
        "kept": len(table),
        "ingestion": meta.get("summary", {}),
    }


def format_summary(summary: dict, out) -> str:
    """What was embedded and what was not, as lines of text."""
    lines = [f"embeddings: {out} ({summary['kept']} windows)"]
    if "recordings" in summary:
        rejected = {r: n for r, n in summary["rejected"].items() if n}
        lines.append(
            f"recordings read: {summary['recordings']}  windows: "
            f"{summary['windows']}  kept: {summary['kept']}"
        )
        if rejected:
            lines.append("rejected: " + ", ".join(f"{r} {n}" for r, n in rejected.items()))
        if summary["too_short"]:
            shown = ", ".join(summary["too_short"][:10])
            lines.append(
                f"recordings shorter than one window ({len(summary['too_short'])}): "
                f"{shown}{' ...' if len(summary['too_short']) > 10 else ''}"
            )
        if summary["errors"]:
            lines.append(f"files skipped: {len(summary['errors'])}")
            lines += [f"  {p}: {why}" for p, why in summary["errors"]]
    return "\n".join(lines)


def parser():
    """The command line's flags (argparse: `run` can be called again in one process)."""
    import argparse

    p = argparse.ArgumentParser(
        prog="ahms-fm embed",
        description="A checkpoint's embeddings of a folder of "
        "recordings (or of a dataset) -> Parquet, with a summary of what was rejected and why.",
        epilog="examples:\n  ahms-fm embed --checkpoint runs/ecg --folder exams --spec "
        "exams/cohort.json --out exams.parquet\n  ahms-fm embed --checkpoint runs/demo "
        "--dataset datasets/synthetic_ppg/p1000_s8_seed0_20s_64hz_4ch_v2/1.0.0 --splits test "
        "--out test.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint", required=True, help="A run's workdir, its checkpoints/ or one step folder."
    )
    p.add_argument("--step", type=int, help="Which checkpoint (default: the latest).")
    p.add_argument("--which", default="teacher", choices=["teacher", "student"])
    p.add_argument("--folder", help="A folder of recordings (with --spec) ...")
    p.add_argument("--spec", help="... described by this bring-your-own spec (JSON; docs/data.md).")
    p.add_argument("--dataset", help="Or: a prepared dataset folder (every record of --splits).")
    p.add_argument(
        "--splits", default=",".join(dataset.SPLITS), help="The dataset's splits, comma-separated."
    )
    p.add_argument("--out", required=True, help="The Parquet file to write.")
    p.add_argument(
        "--on_error",
        default="raise",
        choices=["raise", "skip"],
        help="A file that cannot be read: stop, or skip it and list it.",
    )
    p.add_argument("--batch_size", type=int, default=256, help="Windows per forward pass.")
    return p


def run(argv=None) -> int:
    """Command line `ahms-fm embed`."""
    import sys

    from absl import logging

    argv = sys.argv if argv is None else argv
    p = parser()
    args = p.parse_args(argv[1:])
    if bool(args.folder) == bool(args.dataset):
        p.error("give --folder (with --spec) or --dataset, one of them")
    if args.folder and not args.spec:
        p.error("--folder needs --spec, the JSON that says how to read it")
    logging.set_verbosity(logging.WARNING)
    encoder = embeddings.load_encoder(args.checkpoint, which=args.which, step=args.step)
    if args.folder:
        table, summary = embed_folder(
            encoder, args.folder, args.spec, on_error=args.on_error, batch_size=args.batch_size
        )
        source = {
            "folder": str(Path(args.folder).resolve()),
            "spec": dataclasses.asdict(readers.ByoSpec.from_json(args.spec)),
        }
    else:
        wanted = [s.strip() for s in args.splits.split(",") if s.strip()]
        table, summary = embed_dataset(encoder, args.dataset, wanted, batch_size=args.batch_size)
        source = {"dataset": str(Path(args.dataset).resolve())}
    parquet.write_embeddings(
        table, args.out, metadata={**encoder.describe(), **source, "summary": summary}
    )
    print(format_summary(summary, args.out))
    return 0
