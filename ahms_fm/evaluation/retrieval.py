"""Participant identification across time: does a later stretch of a participant's
recordings find an earlier one among everybody's?

Each participant's segments, in time order (recording, offset, segment), are cut into
thirds: the first third are queries, the last third the gallery, the middle third is
left out so that no query sits next to its answer (on Stress-Predict's ~55-minute
recordings the gap is ~18 minutes and spans other task phases). A query is right when
its nearest gallery segment (cosine similarity of column-standardized features) is the
same participant's. The score is the mean over participants of their queries' hit rate,
with a percentile bootstrap interval over participants; chance is one over the number
of participants in the gallery. No training: it reads what the features hold about who
someone is, the positive pairs the recipe trains on.
"""

from __future__ import annotations

import numpy as np


def thirds(table) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, gallery rows) of the segment `table` (participant_index and, where
    present, recording, offset_s, segment); participants with one segment are left out."""
    table = table.reset_index(drop=True)  # rows are positions
    keys = [c for c in ("recording", "offset_s", "segment") if c in table.columns]
    order = table.sort_values(["participant_index", *keys], kind="stable").index.to_numpy()
    groups = table["participant_index"].to_numpy()[order]
    query, gallery = [], []
    for g in np.unique(groups):
        rows = order[groups == g]
        n = len(rows)
        if n < 2:
            continue
        third = max(1, n // 3)
        query.append(rows[:third])
        gallery.append(rows[n - third :])
    empty = np.zeros(0, np.int64)
    return (
        np.concatenate(query) if query else empty,
        np.concatenate(gallery) if gallery else empty,
    )


def hits(x: np.ndarray, groups: np.ndarray, query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """[len(query)] whether each query row's nearest gallery row is its participant's."""
    rows = np.concatenate([query, gallery])
    x = np.asarray(x, np.float64)[rows]
    x = np.where(np.isfinite(x), x, np.nan)
    mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    z = np.nan_to_num((x - mean) / np.where(std > 0, std, 1.0))
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    q, g = z[: len(query)], z[len(query) :]
    nearest = np.argmax(q @ g.T, axis=1)
    return groups[gallery][nearest] == groups[query]


def evaluate(
    table, features: dict, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> list[dict]:
    """One record per feature set: top-1 accuracy [interval], participants, chance."""
    query, gallery = thirds(table)
    if len(np.unique(table["participant_index"].to_numpy()[query])) < 2:
        return []
    groups = table["participant_index"].to_numpy()
    who = groups[query]
    people, inverse = np.unique(who, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(people), size=(n_boot, len(people)))
    out = []
    for name, x in features.items():
        per_person = np.bincount(inverse, hits(x, groups, query, gallery)) / np.bincount(inverse)
        boot = per_person[draws].mean(axis=1)
        lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
        out.append(
            {
                "features": name,
                "top1": float(per_person.mean()),
                "low": float(lo),
                "high": float(hi),
                "participants": len(people),
                "queries": len(query),
                "chance": 1.0 / len(people),
            }
        )
    return out


def markdown(records: list[dict], pct: str = "95%") -> list[str]:
    """The report's section (lines), or none."""
    if not records:
        return []
    r0 = records[0]
    lines = [
        "",
        f"Participant identification across time: each participant's first third "
        f"of segments queries the last third of everybody's ({r0['participants']} "
        f"participants, {r0['queries']} queries; chance {r0['chance']:.3f}). Top-1 "
        f"accuracy, mean over participants [{pct} bootstrap interval]:",
        "",
        "| features | top-1 |",
        "|---|---|",
    ]
    lines += [
        f"| {r['features']} | {r['top1']:.3f} [{r['low']:.3f}, {r['high']:.3f}] |" for r in records
    ]
    return lines
