"""A cheap probe while training: closed-form ridge on the validation split.

Every `probe.every_steps` steps the training loop embeds up to
`probe.max_segments_per_participant` segments of each validation participant,
averages them per participant, and fits ridge (closed form, also for binary
targets, scored by ROC AUC of fold-standardized scores, `probe.fold_scores`) with k-fold
cross-fitting over participants. The
numbers go into the run's metrics as `probe/<target>/<metric>`. They track
whether the embedding is learning something; the full evaluation
(`ahms-fm probe`) uses the proper protocol and logistic probes.
"""

from __future__ import annotations

import numpy as np

from ahms_fm.data import dataset
from ahms_fm.evaluation import probe, stats
from ahms_fm.evaluation import targets as targets_lib


def pick_records(split, per_participant: int) -> np.ndarray:
    """The first `per_participant` records of each participant of `split`, sorted."""
    order, ranges = split.grouped
    picks = [order[first : first + min(count, per_participant)] for _, first, count in ranges]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)


def segment_table(split, records: np.ndarray):
    """participant_index, split and the per-segment fields probes may target."""
    import grain
    import pandas as pd

    source = grain.sources.ArrayRecordDataSource(split.files)
    rows = [
        dataset.parse_record(
            source[int(i)],
            (0, 0),
            split.storage_dtype,
            fields=("heart_rate", "label"),
            signal=False,
        )[1]
        for i in records
    ]
    return pd.DataFrame(
        {
            "participant_index": split.participant_of_record[records].astype(np.int64),
            "split": split.name,
            "heart_rate": np.array([r["heart_rate"] for r in rows], np.float32),
            "label": [r["label"] for r in rows],
        }
    )


def quick_probe(config, split, embed_batch, *, batch_size: int) -> dict[str, float]:
    """Cross-fitted ridge metrics of the embeddings `embed_batch([b, time, ch]) -> [b, d]`
    (b = batch_size, every call the same shape) on `split`."""
    pc = config.probe
    records = pick_records(split, pc.max_segments_per_participant)
    if len(records) == 0:
        return {}
    parts = []
    for start in range(0, len(records), batch_size):
        idx = records[start : start + batch_size]
        x = dataset.read_signals(split, idx, dtype="float16")  # as the pipeline's
        pad = batch_size - len(idx)
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        parts.append(np.asarray(embed_batch(x))[: len(idx)])
    z = np.concatenate(parts)
    table = segment_table(split, records)
    table["split"] = "test"  # cross-fitting: every unit is predicted by the other folds
    name = dataset.load_metadata(split.path)["name"]
    targets = (
        targets_lib.parse_targets(pc.train_targets)
        if pc.train_targets
        else targets_lib.default_targets(name, split.participants)
    )
    strengths = np.logspace(*pc.log10_strengths, pc.num_strengths)
    out = {}
    for level in ("participant", "segment"):
        level_targets = [t for t in targets if t.level == level]
        if not level_targets:
            continue
        units = probe.make_units(level, table, {"embedding": z})
        if len(np.unique(units.groups)) < 3:
            continue
        y, kinds = probe.target_matrix(units, level_targets, split.participants, str(split.path))
        ridge_only = np.zeros(len(kinds), bool)  # closed form for every target
        tested, pred, _, _, _ = probe.predictions(
            units.features["embedding"],
            y,
            ridge_only,
            units,
            "crossfit",
            folds=pc.folds,
            strengths=strengths,
            seed=pc.seed,
            ranked=[k == "binary" for k in kinds],
        )
        for j, (t, kind) in enumerate(zip(level_targets, kinds, strict=True)):
            ok = tested & np.isfinite(y[:, j])
            if ok.sum() < 10:
                continue
            if kind == "binary":
                if 0 < y[ok, j].sum() < ok.sum():
                    out[f"probe/{t.name}/roc_auc"] = stats.roc_auc(y[ok, j], pred[ok, j])
            else:
                out[f"probe/{t.name}/r2"] = stats.r2(y[ok, j], pred[ok, j])
                out[f"probe/{t.name}/mae"] = stats.mae(y[ok, j], pred[ok, j])
    return {k: float(v) for k, v in out.items()}
