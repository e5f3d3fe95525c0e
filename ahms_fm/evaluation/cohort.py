"""What the probes are fitted and tested on: one dataset, or a training and a test one.

    cohort = single(resolve_dataset("ppg_bp", "datasets", info))  # its own train/test splits
    cohort = external(part("datasets/a", ...), part("datasets/b:test", ...))
    table, z = embed(encoder, cohort, batch_size=256, progress=True)
    x, names = handcrafted(cohort, "ppg", progress=True)  # the same rows, in the same order

A dataset argument is a prepared dataset folder or a name under the data folder,
optionally followed by `:split` or `:split+split` (e.g. `ppg_bp:test`) to take only
those splits. In an external cohort every segment of the first part is training
data and every segment of the second is test data (the `split` column says
"train" or "test"), participant indices of the second part are shifted past the
first's, and a participant id in both parts is refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ahms_fm.data import dataset
from ahms_fm.evaluation import embeddings
from ahms_fm.evaluation.features import handcrafted_features


@dataclasses.dataclass(frozen=True)
class Part:
    """Some splits of one prepared dataset."""

    path: Path
    splits: tuple[str, ...]
    label: str  # as given (for messages)


@dataclasses.dataclass
class Cohort:
    parts: tuple[Part, ...]
    sides: tuple[str | None, ...]  # per part: None (its own splits) or "train" / "test"
    offsets: tuple[int, ...]  # per part: added to its participant_index
    participants: list[dict]  # participant table over the cohort (shifted indices)
    names: tuple[str, ...]  # per part: the dataset's name
    spec: dict  # the modality spec (every part has the same)

    @property
    def external(self) -> bool:
        return self.sides[0] is not None

    @property
    def where(self) -> str:
        return " -> ".join(p.label for p in self.parts)

    def describe(self) -> dict:
        return {
            "parts": [
                {"dataset": str(p.path), "splits": list(p.splits), "side": side}
                for p, side in zip(self.parts, self.sides, strict=True)
            ]
        }


def resolve_dataset(dataset_arg: str | None, data_dir: str, info: dict) -> Path:
    """A prepared dataset folder: a path, a name under `data_dir`, or the checkpoint's own."""
    if not dataset_arg:
        path = Path(info.get("dataset", ""))
        if not (path / dataset.METADATA).exists():
            raise FileNotFoundError(
                f"the checkpoint's training dataset {str(path)!r} is not here; pass --dataset"
            )
        return path
    path = Path(dataset_arg)
    if (path / dataset.METADATA).exists():
        return path
    found = sorted(p.parent for p in (Path(data_dir) / dataset_arg).glob(f"**/{dataset.METADATA}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise FileNotFoundError(
            f"no prepared dataset {dataset_arg!r} (a folder with "
            f"{dataset.METADATA}, or a name under {data_dir})"
        )
    raise ValueError(
        f"{dataset_arg!r} names several datasets under {data_dir}: "
        f"{[str(p) for p in found]}; pass one folder"
    )


def part(text: str, data_dir: str, info: dict) -> Part:
    """`dataset[:split[+split]]` -> Part (all splits without a suffix)."""
    name, splits = text, dataset.SPLITS
    head, sep, tail = text.rpartition(":")
    if sep and tail and all(s in dataset.SPLITS for s in tail.split("+")):
        name, splits = head, tuple(dict.fromkeys(tail.split("+")))
    return Part(resolve_dataset(name, data_dir, info), tuple(splits), text)


def _participants(p: Part, meta: dict) -> list[dict]:
    return [q for q in meta["participants"] if q.get("split") in p.splits]


def single(path: Path) -> Cohort:
    """One dataset with its own splits (train + validation train, test tests)."""
    meta = dataset.load_metadata(path)
    return Cohort(
        (Part(Path(path), dataset.SPLITS, str(path)),),
        (None,),
        (0,),
        meta["participants"],
        (meta["name"],),
        meta["modality_spec"],
    )


def external(train: Part, test: Part) -> Cohort:
    """Train on every participant of `train`, test on every participant of `test`."""
    metas = [dataset.load_metadata(p.path) for p in (train, test)]
    if metas[0]["modality_spec"] != metas[1]["modality_spec"]:
        raise ValueError(
            f"{train.label} and {test.label} have different modality specs: "
            f"{metas[0]['modality_spec']} vs {metas[1]['modality_spec']}"
        )
    people = [_participants(p, m) for p, m in zip((train, test), metas, strict=True)]
    for p, found in zip((train, test), people, strict=True):
        if not found:
            raise ValueError(f"{p.label}: no participants in splits {list(p.splits)}")
    both = sorted(
        {str(q["participant"]) for q in people[0]} & {str(q["participant"]) for q in people[1]}
    )
    if both:
        shown = ", ".join(both[:5]) + (", ..." if len(both) > 5 else "")
        raise ValueError(
            f"external validation needs disjoint cohorts, but {len(both)} "
            f"participant id(s) are in both {train.label} (training) and "
            f"{test.label} (test): {shown}"
        )
    offset = 1 + max(int(q["participant_index"]) for q in people[0])
    merged = [dict(q, split="train") for q in people[0]] + [
        dict(q, participant_index=int(q["participant_index"]) + offset, split="test")
        for q in people[1]
    ]
    return Cohort(
        (train, test),
        ("train", "test"),
        (0, offset),
        merged,
        (metas[0]["name"], metas[1]["name"]),
        metas[0]["modality_spec"],
    )


def _rows(cohort: Cohort):
    """(part, side, offset, split name) in the cohort's one fixed row order."""
    for p, side, offset in zip(cohort.parts, cohort.sides, cohort.offsets, strict=True):
        for split in p.splits:
            yield p, side, offset, split


def embed(encoder, cohort: Cohort, *, batch_size: int, progress: bool):
    """Every segment of the cohort, embedded: (segment table, [n, d] float32)."""
    import pandas as pd

    frames = []
    for p, side, offset, split in _rows(cohort):
        t = embeddings.embed_split(
            encoder, dataset.load_split(p.path, split), batch_size=batch_size, progress=progress
        )
        t["participant_index"] += offset
        if side is not None:
            t["split"] = side
        frames.append(t)
    table = pd.concat(frames, ignore_index=True)
    return table.drop(columns=["embedding"]), embeddings.embedding_matrix(table)


def handcrafted(cohort: Cohort, modality: str, progress: bool, chunk: int = 2048):
    """Hand-crafted features of every segment, in `embed`'s row order: ([n, f], names)."""
    del progress  # fast enough without a bar
    out, names = [], None
    for p, _, _, split in _rows(cohort):
        records = dataset.load_split(p.path, split)
        for start in range(0, len(records), chunk):
            idx = np.arange(start, min(start + chunk, len(records)))
            f, names = handcrafted_features(
                dataset.read_signals(records, idx), records.spec.sample_rate, modality
            )
            out.append(f)
    return np.concatenate(out), names


def calibration_windows(cohort: Cohort, n: int) -> np.ndarray:
    """The first `n` windows on the probes' training side, for the untrained encoders'
    batch norm: the train split of the first part (or its first split without one)."""
    first = cohort.parts[0]
    split = "train" if "train" in first.splits else first.splits[0]
    records = dataset.load_split(first.path, split)
    return dataset.read_signals(records, np.arange(min(len(records), n)))
