"""Segment datasets on disk: what a dataset is (splits, features) and reading it; writing
one is `ahms_fm.data.write`.

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
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from ahms_fm.data.preprocess import ModalitySpec

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
