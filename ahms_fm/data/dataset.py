"""Segment datasets on disk: TFDS builders writing ArrayRecord, and their readers.

One record per kept segment:

| feature | |
|---|---|
| `signal` | `[time, channels]`, z-scored, stored as raw bytes (float16 by default) |
| `participant` | the participant's id (text) |
| `participant_index` | its row in the participant table, the integer id training uses |
| `recording`, `segment` | the recording it was cut from and the window's number there |
| `offset_s`, `start_time` | window start: seconds into the recording; unix s (NaN: unknown) |
| `heart_rate`, `quality` | estimated rate (bpm) and periodicity in [0, 1] |
| `label` | a per-segment label where the source has one (e.g. a task phase), else "" |

Splits are by participant, 80/10/10, from a hash of the id (deterministic).
Next to each split's shards, `<name>-<split>.participants.npy` gives every
record's participant index (what pairing needs, without reading records);
`ahms_fm.json` holds the participant table (labels and split), the modality
spec and the ingestion summary. Records stream straight into ArrayRecord
shards (bounded memory; TFDS's own writer needs TensorFlow to spill to disk)
and `tfds.folder_dataset.write_metadata` makes the folder a TFDS dataset.
Everything is written into a temporary folder renamed at the very end, so a
dataset is either complete or not there at all.

Reading needs no TensorFlow: `tfds.builder_from_directory(path)` or `load_split`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from array_record.python import array_record_module

from ahms_fm.data.preprocess import REASONS, ModalitySpec
from ahms_fm.jsonable import jsonable
from ahms_fm.lock import process_alive

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_RULE = "sha256 position vs cumulative fractions"  # in fingerprints: how splits are made
VERSION = "1.0.0"
METADATA = "ahms_fm.json"  # participant table, modality spec, ingestion summary


@dataclasses.dataclass
class SegmentBatch:
    """Windows of one or more recordings, as a source yields them (rejected ones too)."""

    participant: list[str]
    recording: list[str]
    segment: np.ndarray
    offset_s: np.ndarray
    start_time: np.ndarray
    signal: np.ndarray  # [n, time, channels]
    heart_rate: np.ndarray
    quality: np.ndarray
    reason: np.ndarray  # "" = kept
    label: list[str] | None = None
    too_short: int = 0  # recordings without one whole window
    owner: str = ""  # the participant of a one-recording batch (even without segments)
    pad_s: np.ndarray | None = None  # seconds padded after the signal, per window (None: 0)


@dataclasses.dataclass
class Source:
    """Where a dataset comes from: its participants and a way to produce their segments.

    `segments(participant_ids)` yields `SegmentBatch`es for exactly those
    participants, in that order; `errors` collects (path, problem) for files a
    source skipped.
    """

    name: str
    description: str
    participants: dict[str, dict]  # id -> labels
    segments: Callable[[list[str]], Iterator[SegmentBatch]]
    citation: str = ""
    homepage: str = ""
    config_name: str = ""  # a TFDS builder config: variants of one dataset (e.g. sizes)
    errors: list = dataclasses.field(default_factory=list)


def split_position(pid: str, salt: str = "ahms_fm") -> float:
    """Participant `pid`'s place in [0, 1): a hash of its id alone."""
    return int(hashlib.sha256(f"{salt}:{pid}".encode()).hexdigest()[:15], 16) / 16.0**15


def assign_splits(ids, salt: str = "ahms_fm") -> dict[str, str]:
    """Participant id -> split, by its `split_position` against the cumulative
    `SPLIT_FRACTIONS` (0.8, 0.9): a participant's split depends on its id alone, so adding
    participants moves no one. Split sizes are binomial around 80/10/10 (a test split of
    100 +- 9.5 in a cohort of 1,000). A cohort so small that a split would be empty (from 3
    participants up) lends that split the participant nearest to it from the largest one:
    only there can a cohort's splits differ from a larger cohort's.
    """
    ids = sorted(set(ids))
    edges = np.cumsum(SPLIT_FRACTIONS)[:-1]
    pos = {p: split_position(p, salt) for p in ids}
    out = {p: SPLITS[int(np.searchsorted(edges, pos[p], side="right"))] for p in ids}
    if len(ids) >= 3:
        lo = np.concatenate([[0.0], edges])
        hi = np.concatenate([edges, [1.0]])
        for k, split in enumerate(SPLITS):
            if split in out.values():
                continue
            largest = max(SPLITS, key=lambda s: (sum(v == s for v in out.values()), s))
            nearest = min(
                (p for p in ids if out[p] == largest),
                key=lambda p: (max(lo[k] - pos[p], pos[p] - hi[k], 0.0), p),
            )
            out[nearest] = split
    return out


def features(spec: ModalitySpec, storage_dtype: str) -> tfds.features.FeaturesDict:
    f = tfds.features
    return f.FeaturesDict(
        {
            "signal": f.Tensor(
                shape=(spec.segment_length, spec.channels),
                dtype=np.dtype(storage_dtype),
                encoding=f.Encoding.BYTES,  # raw bytes: a float list would store float32
            ),
            "participant": f.Text(),
            "participant_index": np.int64,
            "recording": f.Text(),
            "segment": np.int32,
            "offset_s": np.float32,
            # Raw bytes: TFDS stores float scalars as float32, too coarse for unix seconds.
            "start_time": f.Tensor(shape=(), dtype=np.float64, encoding=f.Encoding.BYTES),
            "heart_rate": np.float32,
            "quality": np.float32,
            "label": f.Text(),
            # Seconds of zeros after a short recording's signal (preprocess.max_pad_fraction).
            "pad_s": np.float32,
        }
    )


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
    infos, visited = [], set()
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
        summary["participants_with_segments"] += len(set(owners))
        summary["split_segments"][split] = len(owners)
        infos.append(writer.finish())
    # Who contributed nothing, and why: no recording at all, or every window rejected.
    kept = {
        ids[i]
        for i in np.unique(
            np.concatenate(
                [np.load(folder / f"{source.name}-{s}.participants.npy") for s in SPLITS]
            )
        )
    }
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


# ----------------------------------------------------------------------------
# Reading.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Split:
    """One split of a dataset: random access to records plus who each record belongs to."""

    path: Path
    name: str
    records: object  # TFDS ArrayRecord data source: len() and [i] -> dict of numpy
    spec: ModalitySpec
    participants: list[dict]  # the whole table (all splits)
    participant_of_record: np.ndarray  # [records] participant_index
    files: list[str]  # the split's ArrayRecord shards, in record order
    storage_dtype: str

    def __len__(self):
        return len(self.records)

    @property
    def grouped(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, ranges): record indices grouped by participant, and per participant
        a row (participant_index, first position in `order`, count)."""
        order = np.argsort(self.participant_of_record, kind="stable")
        ids, first, count = np.unique(
            self.participant_of_record[order], return_index=True, return_counts=True
        )
        return order, np.stack([ids, first, count], axis=1).astype(np.int64)


def dataset_dir(data_dir, name: str, config_name: str = "") -> Path:
    """The prepared dataset `name` (and config, e.g. a synthetic size) under `data_dir`."""
    path = Path(data_dir) / name / config_name / VERSION
    if not (path / METADATA).exists():
        what = f"{name}/{config_name}" if config_name else name
        raise FileNotFoundError(
            f"no prepared dataset '{what}' under {data_dir} (run `ahms-fm ingest` first)"
        )
    return path


def load_metadata(path) -> dict:
    """The participant table, modality spec and ingestion summary of a dataset."""
    try:
        with open(Path(path) / METADATA) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not a prepared dataset (no {METADATA})") from None


def load_split(path, split: str) -> Split:
    """Open `split` of the prepared dataset in folder `path`."""
    path = Path(path)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are {SPLITS}")
    meta = load_metadata(path)
    builder = tfds.builder_from_directory(str(path))
    records = builder.as_data_source(split=split)
    owners = np.load(path / f"{meta['name']}-{split}.participants.npy")
    if len(owners) != len(records):
        raise ValueError(
            f"{path}: split {split} has {len(records)} records, but its "
            f"participant index covers {len(owners)}"
        )
    files = [str(f) for f in builder.info.splits[split].filepaths]
    return Split(
        path,
        split,
        records,
        ModalitySpec.from_dict(meta["modality_spec"]),
        meta["participants"],
        owners,
        files,
        meta["storage_dtype"],
    )


# The scalar fields of a record, and their types once decoded.
RECORD_FIELDS = {
    "participant": str,
    "participant_index": np.int64,
    "recording": str,
    "segment": np.int64,
    "offset_s": np.float32,
    "label": str,
    "heart_rate": np.float32,
    "quality": np.float32,
}


def parse_record(
    record: bytes, shape: tuple[int, int], storage_dtype, *, fields=(), signal: bool = True
) -> tuple[np.ndarray | None, dict]:
    """(the `signal` [time, channels] if asked, {field: value} of `fields`) of one
    serialized record, straight from its proto: TFDS's generic decoding of every feature
    costs several times more. The one record reader of the project."""
    from tensorflow_datasets.proto import tf_example_pb2

    f = tf_example_pb2.Example.FromString(record).features.feature
    x = (
        np.frombuffer(f["signal"].bytes_list.value[0], storage_dtype).reshape(shape)
        if signal
        else None
    )
    values = {}
    for k in fields:
        kind = RECORD_FIELDS[k]
        if kind is str:
            values[k] = f[k].bytes_list.value[0].decode()
        elif kind is np.int64:
            values[k] = f[k].int64_list.value[0]
        else:
            values[k] = f[k].float_list.value[0]
    return x, values


def decode_signal(record: bytes, shape: tuple[int, int], storage_dtype) -> np.ndarray:
    """The `signal` of one serialized record, [time, channels] (`parse_record`)."""
    return parse_record(record, shape, storage_dtype)[0]


def read_signals(split: Split, indices, dtype="float32") -> np.ndarray:
    """The signals of records `indices` of `split`, [n, time, channels]."""
    import grain

    source = grain.sources.ArrayRecordDataSource(split.files)
    shape = (split.spec.segment_length, split.spec.channels)
    out = np.empty((len(indices), *shape), dtype)
    for j, i in enumerate(indices):
        out[j] = decode_signal(source[int(i)], shape, split.storage_dtype)
    return out
