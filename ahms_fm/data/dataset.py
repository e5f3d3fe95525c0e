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

Splits are by participant, 80/10/10, from a hash of the id (deterministic, and
the same participant lands in the same split whatever else the cohort holds
when sizes allow). Records are written in participant order, so each split's
metadata can give every participant's records as one contiguous range; the
participant table (labels and split), the modality spec and the ingestion
summary are in the TFDS metadata, written inside TFDS's temporary folder, so a
dataset is either complete with all of them or not there at all.

Reading needs no TensorFlow: `load_split` gives an ArrayRecord data source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from ahms_fm.data.preprocess import REASONS, ModalitySpec

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
VERSION = "1.0.0"


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


def assign_splits(ids, salt: str = "ahms_fm") -> dict[str, str]:
    """Participant id -> split: ids ordered by a hash, then cut at 80% and 90%."""
    ids = sorted(set(ids))
    keyed = sorted(ids, key=lambda p: hashlib.sha256(f"{salt}:{p}".encode()).hexdigest())
    n = len(keyed)
    n_train = math.floor(SPLIT_FRACTIONS[0] * n + 0.5)
    n_val = math.floor(sum(SPLIT_FRACTIONS[:2]) * n + 0.5) - n_train
    if n >= 3:  # every split non-empty where there are enough people
        n_val = max(n_val, 1)
        n_train = min(n_train, n - n_val - 1)
    out = {}
    for rank, p in enumerate(keyed):
        out[p] = SPLITS[0] if rank < n_train else SPLITS[1] if rank < n_train + n_val else SPLITS[2]
    return out


def features(spec: ModalitySpec, storage_dtype: str) -> tfds.features.FeaturesDict:
    f = tfds.features
    return f.FeaturesDict({
        "signal": f.Tensor(
            shape=(spec.segment_length, spec.channels), dtype=np.dtype(storage_dtype),
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
    })


def _json_safe(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    return v


class _SegmentBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A TFDS builder over a `Source`; `make_builder` names a subclass per dataset."""

    VERSION = tfds.core.Version(VERSION)

    def __init__(self, *, source: Source, spec: ModalitySpec, storage_dtype: str,
                 progress: Callable[[int], None] | None = None, **kwargs):
        self._source = source
        self._spec = spec
        self._storage_dtype = storage_dtype
        self._progress = progress or (lambda n: None)
        ids = sorted(source.participants)
        self._split_of = assign_splits(ids)
        self._index_of = {p: i for i, p in enumerate(ids)}
        self._summary = {"segments_kept": 0, "rejected": dict.fromkeys(REASONS, 0),
                         "participants_with_segments": 0}
        self._ranges = {s: [] for s in SPLITS}  # (participant_index, first, count)
        super().__init__(**kwargs)

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=self._source.description,
            features=features(self._spec, self._storage_dtype),
            homepage=self._source.homepage or None,
            citation=self._source.citation or None,
            disable_shuffling=True,  # keep participant order: contiguous ranges
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {s: self._generate_examples(s) for s in SPLITS}

    def _generate_examples(self, split):
        ids = sorted(p for p, s in self._split_of.items() if s == split)
        rank = {p: r for r, p in enumerate(ids)}
        # Integer keys kept in order (no shuffling); spread over TFDS's 128-bit key
        # space so its on-disk buckets split the data evenly (bounded memory).
        stride = (1 << 128) // max(len(ids), 1)
        within, dtype, visited = {}, np.dtype(self._storage_dtype), set()
        for batch in self._source.segments(ids):
            self._count(batch)
            if batch.participant and batch.participant[0] not in rank:
                raise ValueError(f"source {self._source.name} yielded participant "
                                 f"{batch.participant[0]!r} for split {split}")
            for i in np.flatnonzero(batch.reason == ""):
                pid = batch.participant[i]
                k = within.get(pid, 0)
                within[pid] = k + 1
                yield rank[pid] * stride + k, {
                    "signal": batch.signal[i].astype(dtype),
                    "participant": pid,
                    "participant_index": self._index_of[pid],
                    "recording": batch.recording[i],
                    "segment": int(batch.segment[i]),
                    "offset_s": float(batch.offset_s[i]),
                    "start_time": float(batch.start_time[i]),
                    "heart_rate": float(batch.heart_rate[i]),
                    "quality": float(batch.quality[i]),
                    "label": batch.label[i] if batch.label else "",
                }
            new = {batch.owner} if batch.owner else set(batch.participant)
            self._progress(len(new - visited))
            visited |= new
        first = 0
        for p in ids:
            count = within.get(p, 0)
            if count:
                self._ranges[split].append((self._index_of[p], first, count))
            first += count
        self._summary["participants_with_segments"] += sum(1 for p in ids if within.get(p))

    def _download_and_prepare(self, *args, **kwargs):
        out = super()._download_and_prepare(*args, **kwargs)
        self._write_metadata()  # before TFDS saves the info and renames the folder
        return out

    def _count(self, batch: SegmentBatch):
        self._summary["segments_kept"] += int(np.sum(batch.reason == ""))
        for r in REASONS:
            self._summary["rejected"][r] += int(np.sum(batch.reason == r))
        self._summary["rejected"]["too_short"] += batch.too_short

    def _write_metadata(self):
        ids = sorted(self._source.participants)
        table = [
            {"participant": p, "participant_index": i, "split": self._split_of[p],
             **self._source.participants[p]}
            for i, p in enumerate(ids)
        ]
        self.info.metadata.update(_json_safe({
            "modality_spec": self._spec.to_dict(),
            "storage_dtype": self._storage_dtype,
            "participants": table,
            "ranges": {s: [list(r) for r in self._ranges[s]] for s in SPLITS},
            "summary": {**self._summary, "participants": len(ids),
                        # unique: each split's pass may meet the same bad file
                        "errors": [list(e) for e in dict.fromkeys(
                            tuple(e) for e in self._source.errors)]},
        }))


def make_builder(source: Source, spec: ModalitySpec, data_dir, *, storage_dtype="float16",
                 progress=None) -> tfds.core.DatasetBuilder:
    """A TFDS builder named `source.name`, writing ArrayRecord under `data_dir`."""
    cls = types.new_class(
        "".join(w.capitalize() for w in source.name.split("_")), (_SegmentBuilder,),
        {"skip_registration": True}, lambda ns: ns.update(name=source.name),
    )
    kwargs = {}
    if source.config_name:
        kwargs["config"] = tfds.core.BuilderConfig(name=source.config_name)
    return cls(source=source, spec=spec, storage_dtype=storage_dtype, progress=progress,
               data_dir=str(data_dir), file_format="array_record", **kwargs)


def build(source: Source, spec: ModalitySpec, data_dir, *, storage_dtype="float16",
          progress=None, overwrite=False) -> Path:
    """Write the dataset; returns its folder. TFDS writes into a temporary folder and
    renames it at the end, so an interrupted run leaves no dataset behind."""
    builder = make_builder(source, spec, data_dir, storage_dtype=storage_dtype,
                           progress=progress)
    tfds.disable_progress_bar()  # per-split bars; callers show one over participants
    mode = (tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS if not overwrite
            else tfds.download.GenerateMode.FORCE_REDOWNLOAD)
    config = tfds.download.DownloadConfig(download_mode=mode)
    try:
        builder.download_and_prepare(download_config=config)
    except AssertionError as e:  # TFDS's words for an empty split
        if "No examples were yielded" not in str(e):
            raise
        raise ValueError(
            f"{source.name}: {str(e).rstrip('.')}. Every participant of that split was rejected or "
            "unreadable; see the quality settings, or use more participants."
        ) from e
    return Path(builder.data_dir)


# ----------------------------------------------------------------------------
# Reading.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Split:
    """One split of a dataset: random access to records plus the participant index."""

    path: Path
    name: str
    records: object  # ArrayRecord data source: len() and [i] -> dict of numpy
    spec: ModalitySpec
    participants: list[dict]  # the whole table (all splits)
    ranges: np.ndarray  # [participants in split, 3]: participant_index, first, count
    files: list[str]  # the split's ArrayRecord shards, in record order
    storage_dtype: str

    def __len__(self):
        return len(self.records)

    @property
    def participant_of_record(self) -> np.ndarray:
        """[records] participant_index of every record, from the ranges."""
        return np.repeat(self.ranges[:, 0], self.ranges[:, 2])


def dataset_dir(data_dir, name: str, config_name: str = "") -> Path:
    """The newest prepared version of dataset `name` (and builder config) under `data_dir`."""
    root = Path(data_dir) / name / config_name
    versions = sorted(
        (p for p in root.glob("*.*.*") if (p / "dataset_info.json").exists()),
        key=lambda p: tuple(int(x) for x in p.name.split(".")),
    ) if root.exists() else []
    if not versions:
        what = f"{name}/{config_name}" if config_name else name
        raise FileNotFoundError(
            f"no prepared dataset '{what}' under {data_dir} (run `ahms-fm ingest` first)"
        )
    return versions[-1]


def load_metadata(path) -> dict:
    with open(Path(path) / "metadata.json") as f:
        return json.load(f)


def load_split(path, split: str) -> Split:
    """Open `split` of the prepared dataset whose version folder is `path`."""
    path = Path(path)
    if not (path / "dataset_info.json").exists():
        raise FileNotFoundError(f"{path}: not a prepared dataset (no dataset_info.json)")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are {SPLITS}")
    meta = load_metadata(path)
    builder = tfds.builder_from_directory(str(path))
    records = builder.as_data_source(split=split)
    ranges = np.asarray(meta["ranges"][split], np.int64).reshape(-1, 3)
    if ranges[:, 2].sum() != len(records):
        raise ValueError(f"{path}: split {split} has {len(records)} records, but its "
                         f"participant index covers {ranges[:, 2].sum()}")
    info = builder.info.splits[split]
    files = [str(f) for f in info.filepaths]
    return Split(path, split, records, ModalitySpec.from_dict(meta["modality_spec"]),
                 meta["participants"], ranges, files, meta["storage_dtype"])
