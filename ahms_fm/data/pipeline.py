"""The Grain pipeline: a dataset split -> batches of participant-paired views.

    batch = {"view_a": [b, time, channels], "view_b": [...], "participant": [b]}

- participant-level positives: `view_a` and `view_b` are two different segments
  of the same participant; participants with a single segment cannot form a
  pair and are skipped (counted in `PairPipeline.skipped`);
- segment-level positives (the ablation): the same segment twice (the on-device
  augmentations make the two views differ).

Sampling by segment visits every eligible segment once per epoch (and draws its
partner at random); sampling by participant visits every eligible participant
once per epoch (and draws both segments). The order is a seeded shuffle, new
each epoch; each JAX process reads its contiguous share of every global batch.
Every random choice is a function of (seed, position in the stream), so the
stream is the same whatever the number of workers, and an iterator restored
from `get_state()` continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np
from absl import flags

from ahms_fm.data.dataset import Split, decode_signal


@dataclasses.dataclass
class PairPipeline:
    """The iterable dataset plus what it skipped."""

    dataset: grain.IterDataset
    per_process_batch: int
    eligible: int  # units sampled per epoch (segments or participants)
    skipped: dict

    def __iter__(self):
        return iter(self.dataset)


def _eligible(ranges: np.ndarray, positives: str, sample_by: str):
    """Base units of an epoch: [n, 3] rows (participant_index, first record, count)."""
    min_count = 2 if positives == "participant" else 1
    keep = ranges[:, 2] >= min_count
    skipped = {"participants_single_segment": int(np.sum(~keep))}  # min_count is 1 or 2
    rows = ranges[keep]
    if sample_by == "participant":
        return rows, skipped
    if sample_by != "segment":
        raise ValueError(f"sample_by must be 'segment' or 'participant', got {sample_by!r}")
    # One unit per segment: (participant_index, first, count, the segment's offset).
    reps = rows[:, 2]
    unit = np.repeat(rows, reps, axis=0)
    offset = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    return np.concatenate([unit, offset[:, None]], axis=1), skipped


class _ChoosePair(grain.transforms.RandomMap):
    """Unit -> (participant, record a, record b) with the unit's own random draws."""

    def __init__(self, units: np.ndarray, order: np.ndarray, positives: str):
        self.units = units
        self.order = order  # record indices grouped by participant
        self.positives = positives

    def random_map(self, i, rng: np.random.Generator):
        row = self.units[i]
        pid, first, count = int(row[0]), int(row[1]), int(row[2])
        if len(row) == 4:  # sampled by segment: the segment is given
            a = int(row[3])
        else:
            a = int(rng.integers(count))
        if self.positives == "segment":
            b = a
        else:  # a different segment of the same participant
            b = int(rng.integers(count - 1))
            b += b >= a
        return pid, int(self.order[first + a]), int(self.order[first + b])


class _ReadBatch(grain.transforms.Map):
    """[b, 3] (participant, record a, record b) -> the batch of both views.

    Reads the ArrayRecord files directly and takes the signal's raw bytes out of
    each record straight into the batch arrays: TFDS's generic decoding of all
    ten features costs several times more than the read itself.
    """

    def __init__(self, files: list[str], shape: tuple[int, int], storage_dtype: str, dtype):
        self.files = files
        self.shape = shape
        self.storage_dtype = np.dtype(storage_dtype)
        self.dtype = np.dtype(dtype)
        self._source = None

    def __getstate__(self):  # workers open their own file handles
        return {**self.__dict__, "_source": None}

    def _signal(self, index: int) -> np.ndarray:
        return decode_signal(self._source[index], self.shape, self.storage_dtype)

    def map(self, rows):
        if self._source is None:
            self._source = grain.sources.ArrayRecordDataSource(self.files)
        rows = np.asarray(rows)
        views = {k: np.empty((len(rows), *self.shape), self.dtype) for k in ("view_a", "view_b")}
        for j, (_, a, b) in enumerate(rows):
            views["view_a"][j] = self._signal(int(a))
            views["view_b"][j] = views["view_a"][j] if a == b else self._signal(int(b))
        return {**views, "participant": rows[:, 0].astype(np.int32)}


def pair_pipeline(
    split: Split,
    *,
    global_batch: int,
    seed: int,
    positives: str = "participant",
    sample_by: str = "segment",
    process_index: int = 0,
    process_count: int = 1,
    num_workers: int = 0,
    prefetch: int = 2,
    dtype: str = "float16",
    num_epochs: int | None = None,
) -> PairPipeline:
    """Batches of paired views from `split`, this process's share of `global_batch`."""
    if positives not in ("participant", "segment"):
        raise ValueError(f"positives must be 'participant' or 'segment', got {positives!r}")
    if global_batch % process_count:
        raise ValueError(
            f"global batch {global_batch} is not divisible by {process_count} processes"
        )
    order, ranges = split.grouped
    units, skipped = _eligible(ranges, positives, sample_by)
    if len(units) == 0:
        raise ValueError(
            f"{split.path} [{split.name}]: no participant has two segments, so "
            "no participant-level pair can be formed"
        )
    per_process = global_batch // process_count
    ds = grain.MapDataset.range(len(units)).seed(seed).shuffle().repeat(num_epochs)
    ds = ds.random_map(_ChoosePair(units, order, positives))
    # Each process reads its contiguous slice of every global batch, so the global
    # batch (rows in process order) is the same however many processes share it.
    ds = ds.batch(global_batch, drop_remainder=True, batch_fn=np.asarray)
    lo = process_index * per_process
    ds = ds.map(lambda rows: rows[lo : lo + per_process])
    shape = (split.spec.segment_length, split.spec.channels)
    ds = ds.map(_ReadBatch(split.files, shape, split.storage_dtype, dtype))
    it = ds.to_iter_dataset(
        grain.ReadOptions(
            num_threads=0 if num_workers else 2, prefetch_buffer_size=prefetch * per_process
        )
    )
    if num_workers:
        if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags (defaults here)
            flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=prefetch)
        )
    return PairPipeline(it, per_process, len(units), skipped)
