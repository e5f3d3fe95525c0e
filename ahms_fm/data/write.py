"""Writing a dataset (`build`): a source's segments into ArrayRecord shards per split, the
TFDS metadata, the participant table and the ingestion summary, all into a temporary
folder renamed at the very end (complete or absent); a fingerprint of the inputs so a
dataset is never silently reused from others; the reasons when a split keeps nothing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from array_record.python import array_record_module

from ahms_fm.data.dataset import (
    METADATA,
    SPLITS,
    VERSION,
    Source,
    assign_splits,
    features,
    load_metadata,
)
from ahms_fm.data.preprocess import REASONS, ModalitySpec
from ahms_fm.jsonable import jsonable
from ahms_fm.lock import process_alive


def _dataset_path(data_dir, source: Source) -> Path:
    return Path(data_dir) / source.name / (source.config_name or "") / VERSION


class _ShardWriter:
    """ArrayRecord shards of one split, named as TFDS names them once their count is known."""

    def __init__(self, folder: Path, name: str, split: str, shard_bytes: int):
        self.folder, self.prefix, self.shard_bytes = folder, f"{name}-{split}", shard_bytes
        self.lengths: list[int] = []
        self.num_bytes = 0
        self._writer, self._bytes = None, 0

    def write(self, record: bytes):
        if self._writer is None or self._bytes >= self.shard_bytes:
            self._close()
            path = self.folder / f"{self.prefix}.part{len(self.lengths):05d}"
            self._writer = array_record_module.ArrayRecordWriter(str(path), "group_size:1")
            self.lengths.append(0)
            self._bytes = 0
        self._writer.write(record)
        self.lengths[-1] += 1
        self._bytes += len(record)
        self.num_bytes += len(record)

    def _close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def finish(self) -> tfds.core.SplitInfo:
        self._close()
        n = len(self.lengths)
        for i in range(n):
            part = self.folder / f"{self.prefix}.part{i:05d}"
            part.rename(self.folder / f"{self.prefix}.array_record-{i:05d}-of-{n:05d}")
        return self.prefix.rsplit("-", 1)[1], self.lengths, self.num_bytes


class DatasetMismatch(ValueError):
    """A dataset exists under this name but was built from other inputs."""


def check_fingerprint(path, fingerprint: dict | None) -> None:
    """Refuse to reuse the dataset at `path` if it was built from other inputs than
    `fingerprint` describes, naming each difference (datasets built before fingerprints
    were stored are reused, with a warning)."""
    if fingerprint is None:
        return
    stored = load_metadata(path).get("fingerprint")
    if stored is None:
        logging.warning(
            "%s was built before datasets recorded their inputs; reusing it "
            "unchecked (ingest with --overwrite to rebuild)",
            path,
        )
        return
    from ahms_fm.config_utils import flatten

    a, b = flatten(stored), flatten(fingerprint)
    diff = [
        f"{k}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
    if diff:
        raise DatasetMismatch(
            f"{path} was built from other inputs than these:\n  "
            + "\n  ".join(diff)
            + "\nIngest with --overwrite to rebuild it, or set another data.data_dir."
        )


def build(
    source: Source,
    spec: ModalitySpec,
    data_dir,
    *,
    storage_dtype="float16",
    progress=None,
    overwrite=False,
    shard_bytes: int = 1 << 30,
    fingerprint: dict | None = None,
) -> Path:
    """Write the dataset (or reuse it if it exists and its stored `fingerprint`, what it
    was built from, matches); returns its folder.

    Records stream to disk as the source yields them (memory stays bounded);
    everything is written into a temporary folder that is renamed at the very
    end, so an interrupted or failed run leaves no dataset behind. Temporary folders
    left by a killed build are removed first.
    """
    final = _dataset_path(data_dir, source)
    if (final / METADATA).exists() and not overwrite:
        check_fingerprint(final, fingerprint)
        return final
    _remove_orphans(final.parent, final.name)
    progress = progress or (lambda n: None)
    host = socket.gethostname().replace(".", "_")
    tmp = final.parent / f"incomplete.{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{final.name}"
    tmp.mkdir(parents=True)
    try:
        meta = _write_splits(source, spec, tmp, storage_dtype, progress, shard_bytes)
        feats = features(spec, storage_dtype)
        splits = [
            tfds.core.SplitInfo(name=s, shard_lengths=lengths, num_bytes=nbytes)
            for s, lengths, nbytes in meta.pop("_split_infos")
        ]
        tfds.folder_dataset.write_metadata(
            data_dir=tmp,
            features=feats,
            split_infos=splits,
            check_data=False,
            filename_template=tfds.core.ShardedFileTemplate(
                data_dir=tmp, dataset_name=source.name, filetype_suffix="array_record"
            ),
            description=source.description,
            homepage=source.homepage or None,
            citation=source.citation or None,
        )
        if fingerprint is not None:
            meta["fingerprint"] = fingerprint
        with open(tmp / METADATA, "w") as f:
            json.dump(jsonable(meta, finite=True), f)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _remove_orphans(parent: Path, name: str) -> None:
    """Delete the `incomplete.<host>.<pid>.<id>.<name>` build folders that a killed build
    on this host left behind (its process is gone); a build running now keeps its own."""
    if not parent.is_dir():
        return
    host = socket.gethostname().replace(".", "_")
    for orphan in parent.glob(f"incomplete.*.{name}"):
        parts = orphan.name.split(".")
        if len(parts) == 2 + len(name.split(".")):  # incomplete.<id>.<name>: older code
            gone = time.time() - orphan.stat().st_mtime > 3600
        elif parts[1] != host or not parts[2].isdigit():
            continue  # another machine's build: cannot tell whether it runs
        else:
            gone = not process_alive(int(parts[2]))
        if gone:
            logging.warning("removing %s, left by an interrupted build", orphan)
            shutil.rmtree(orphan, ignore_errors=True)


class NothingKept(ValueError):
    """Ingestion kept no segment for a split; the message says why (counts by reason)."""


def _nothing_kept(source, spec, split: str, people: int, summary: dict) -> str:
    """Why a split kept nothing: the rejections by reason, the skipped files, what to do."""
    counts = {r: n for r, n in summary["rejected"].items() if n}
    lines = [
        f"{source.name}: no segment was kept for split {split!r}: all of its {people} "
        "participants were rejected or unreadable. Rejected so far: "
        + (", ".join(f"{r} {n}" for r, n in counts.items()) or "nothing")
    ]
    if counts.get("too_short"):
        lines.append(
            f"too_short: a recording needs at least one whole {spec.window_seconds:g} "
            "s window (input.window_seconds); set preprocess.max_pad_fraction to pad "
            "shorter ones, or use a shorter window"
        )
    if source.errors:
        shown = source.errors[:10]
        lines.append(
            f"files skipped ({len(source.errors)}): "
            + "; ".join(f"{p}: {why}" for p, why in shown)
            + (" ..." if len(source.errors) > 10 else "")
        )
    lines.append("See the quality settings, the errors, or use more participants.")
    return "\n".join(lines)


def _write_splits(source, spec, folder, storage_dtype, progress, shard_bytes) -> dict:
    ids = sorted(source.participants)
    split_of = assign_splits(ids)
    index_of = {p: i for i, p in enumerate(ids)}
    serialize = features(spec, storage_dtype).serialize_example
    dtype = np.dtype(storage_dtype)
    summary = {
        "segments_kept": 0,
        "rejected": dict.fromkeys(REASONS, 0),
        "participants_with_segments": 0,
        "split_segments": {},
    }
    infos, visited, kept = [], set(), set()  # participants seen / with a kept segment
    for split in SPLITS:
        wanted = [p for p in ids if split_of[p] == split]
        writer = _ShardWriter(folder, source.name, split, shard_bytes)
        owners = []  # participant_index of every record, in record order
        for batch in source.segments(wanted):
            summary["segments_kept"] += int(np.sum(batch.reason == ""))
            for r in REASONS:
                summary["rejected"][r] += int(np.sum(batch.reason == r))
            summary["rejected"]["too_short"] += batch.too_short
            for i in np.flatnonzero(batch.reason == ""):
                pid = batch.participant[i]
                if split_of.get(pid) != split:
                    raise ValueError(
                        f"source {source.name} yielded participant {pid!r} "
                        f"while writing split {split}"
                    )
                writer.write(
                    serialize(
                        {
                            "signal": batch.signal[i].astype(dtype),
                            "participant": pid,
                            "participant_index": index_of[pid],
                            "recording": batch.recording[i],
                            "segment": int(batch.segment[i]),
                            "offset_s": float(batch.offset_s[i]),
                            "start_time": np.float64(batch.start_time[i]),
                            "heart_rate": float(batch.heart_rate[i]),
                            "quality": float(batch.quality[i]),
                            "label": batch.label[i] if batch.label else "",
                            "pad_s": float(batch.pad_s[i]) if batch.pad_s is not None else 0.0,
                        }
                    )
                )
                owners.append(index_of[pid])
            new = {batch.owner} if batch.owner else set(batch.participant)
            progress(len(new - visited))
            visited |= new
        if not owners:
            raise NothingKept(_nothing_kept(source, spec, split, len(wanted), summary))
        np.save(folder / f"{source.name}-{split}.participants.npy", np.asarray(owners, np.int64))
        kept |= {ids[i] for i in set(owners)}
        summary["participants_with_segments"] += len(set(owners))
        summary["split_segments"][split] = len(owners)
        infos.append(writer.finish())
    # Who contributed nothing, and why: no recording at all, or every window rejected.
    summary["no_recordings"] = [p for p in ids if p not in visited]
    summary["all_rejected"] = [p for p in ids if p in visited and p not in kept]
    table = [
        {"participant": p, "participant_index": i, "split": split_of[p], **source.participants[p]}
        for i, p in enumerate(ids)
    ]
    errors = [list(e) for e in dict.fromkeys(tuple(e) for e in source.errors)]
    return {
        "name": source.name,
        "modality_spec": spec.to_dict(),
        "storage_dtype": storage_dtype,
        "participants": table,
        "summary": {**summary, "participants": len(ids), "errors": errors},
        "_split_infos": infos,
    }
