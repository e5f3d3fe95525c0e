"""Did pretraining help: the embedding against its baselines, with paired intervals.

For each target, the embedding's headline metric (R² for regression, ROC AUC for
binary targets) is compared with

- the strongest untrained encoder: the best of the K random-init seeds or the run's
  own initialization (`init`), whichever scores higher, and
- the hand-crafted features,

as a difference (embedding - baseline) with a paired bootstrap interval: each
replicate resamples the test participants once and scores both probes on them
(`stats.paired_difference`). The verdict is "ahead" or "behind" when the interval
excludes 0, else "not distinguishable".

The best seed is chosen by its metric on the test participants. That favours the
baseline (the maximum of K noisy estimates is biased upward), so an embedding found
ahead of it is ahead of every seed; the comparison errs against pretraining, never
for it.

On a synthetic cohort (participant targets), the row also holds the ceiling: the same
probe on the generator's true per-participant physiology (ceiling.py), and the
fraction of it that the embedding, the best random seed, init and the hand-crafted
features reach, (value - chance) / (ceiling - chance) with chance 0 for R² and 0.5
for ROC AUC (`ceiling.fraction_of_ceiling`; NaN where the ceiling is not above
chance). A point estimate: the ceiling's own interval is in the row.
"""

from __future__ import annotations

import numpy as np

from ahms_fm.evaluation import baselines, stats
from ahms_fm.evaluation.ceiling import CHANCE, fraction_of_ceiling

HEADLINE = {"regression": "r2", "binary": "roc_auc"}
EMBEDDING = "embedding"
HANDCRAFTED = "handcrafted"
CEILING = "ceiling"
FRACTION_OF = ("embedding", "best_random", "init", "handcrafted")  # row keys with a fraction


def headline(result) -> float:
    """The result's headline metric value (-inf when undefined, so it never wins)."""
    v = result.metrics.get(HEADLINE[result.kind], {}).get("value", np.nan)
    return float(v) if np.isfinite(v) else -np.inf


def seeds_of(results, target: str) -> list:
    """The random-init results of `target`, in seed order."""
    found = [r for r in results if r.target == target and baselines.is_random(r.features)]
    return sorted(found, key=lambda r: int(r.features.split("/")[1]))


def best_seed(results, target: str):
    """The random-init seed with the highest headline metric on the test units, or None."""
    seeds = seeds_of(results, target)
    return max(seeds, key=headline) if seeds else None


def seed_summary(results) -> list[dict]:
    """Per target and metric: every seed's value, their mean and range, and the best seed
    (by the headline metric)."""
    rows = []
    for target in dict.fromkeys(r.target for r in results):
        seeds = seeds_of(results, target)
        if not seeds:
            continue
        best = best_seed(results, target)
        for metric in seeds[0].metrics:
            v = np.array([s.metrics[metric]["value"] for s in seeds], float)
            finite = v[np.isfinite(v)]
            rows.append(
                {
                    "target": target,
                    "metric": metric,
                    "values": v.tolist(),
                    "mean": float(finite.mean()) if len(finite) else np.nan,
                    "min": float(finite.min()) if len(finite) else np.nan,
                    "max": float(finite.max()) if len(finite) else np.nan,
                    "best": best.features,
                    "best_value": best.metrics[metric]["value"],
                }
            )
    return rows


def paired(a, b, metric: str, *, n_boot: int, level: float, seed: int) -> dict:
    """metric(a) - metric(b) on the units both probes predicted, paired bootstrap."""
    _, ia, ib = np.intersect1d(a.rows, b.rows, return_indices=True)
    if not np.array_equal(a.y[ia], b.y[ib], equal_nan=True):
        raise ValueError(f"{a.target}: {a.features} and {b.features} disagree on the truth")
    out = stats.paired_difference(
        a.y[ia],
        a.pred[ia],
        b.pred[ib],
        a.kind,
        metric,
        groups=a.groups[ia],
        n_boot=n_boot,
        level=level,
        seed=seed,
    )
    return {**out, "verdict": verdict(out)}


def verdict(diff: dict) -> str:
    if not (np.isfinite(diff["low"]) and np.isfinite(diff["high"])):
        return "undetermined"
    if diff["low"] > 0:
        return "ahead"
    if diff["high"] < 0:
        return "behind"
    return "not distinguishable"


def _summary(r) -> dict | None:
    if r is None:
        return None
    m = r.metrics[HEADLINE[r.kind]]
    return {"features": r.features, "value": m["value"], "low": m["low"], "high": m["high"]}


def compare(results, *, n_boot: int, level: float, seed: int) -> list[dict]:
    """One row per target that has an embedding result (see the module docstring)."""
    rows = []
    for emb in (r for r in results if r.features == EMBEDDING):
        mine = [r for r in results if r.target == emb.target]
        best = best_seed(mine, emb.target)
        init = next((r for r in mine if r.features == baselines.INIT), None)
        hand = next((r for r in mine if r.features == HANDCRAFTED), None)
        ceil = next((r for r in mine if r.features == CEILING), None)
        untrained = [r for r in (best, init) if r is not None]
        strongest = max(untrained, key=headline) if untrained else None
        metric = HEADLINE[emb.kind]
        kw = {"n_boot": n_boot, "level": level, "seed": seed}
        row = {
            "target": emb.target,
            "kind": emb.kind,
            "metric": metric,
            "embedding": _summary(emb),
            "best_random": _summary(best),
            "n_seeds": len(seeds_of(mine, emb.target)),
            "init": _summary(init),
            "handcrafted": _summary(hand),
            "strongest_untrained": strongest.features if strongest else None,
            "vs_untrained": paired(emb, strongest, metric, **kw) if strongest else None,
            "vs_handcrafted": paired(emb, hand, metric, **kw) if hand else None,
            "ceiling": _summary(ceil),
        }
        row["fraction_of_ceiling"] = fractions(row)
        row["sentence"] = sentence(row)
        rows.append(row)
    return rows


def fractions(row: dict) -> dict | None:
    """{embedding, best_random, init, handcrafted: (value - chance) / (ceiling - chance)}
    of a comparison row (None without a ceiling; NaN for a missing baseline)."""
    if row["ceiling"] is None:
        return None
    chance, top = CHANCE[row["metric"]], row["ceiling"]["value"]
    return {
        k: fraction_of_ceiling(row[k]["value"], top, chance) if row[k] else np.nan
        for k in FRACTION_OF
    }


def sentence(row: dict) -> str:
    """One plain sentence: where the embedding stands against each baseline, and how
    much of the ceiling it reaches (where there is one)."""
    parts = []
    if row["vs_untrained"]:
        parts.append(
            f"{_phrase(row['vs_untrained']['verdict'])} the best untrained encoder "
            f"({row['strongest_untrained']})"
        )
    if row["vs_handcrafted"]:
        parts.append(f"{_phrase(row['vs_handcrafted']['verdict'])} hand-crafted features")
    share = (row.get("fraction_of_ceiling") or {}).get("embedding", np.nan)
    reach = f"reaches {share:.2f} of the ceiling" if np.isfinite(share) else ""
    if not parts and not reach:
        return f"{row['target']}: no baseline to compare with."
    label = {"r2": "R²", "roc_auc": "ROC AUC"}[row["metric"]]
    text = "is " + "; ".join(parts) if parts else ""
    if reach:
        text = f"{text}; it {reach}" if text else reach
    return f"{row['target']} ({label}): the embedding {text}."


def _phrase(v: str) -> str:
    return {
        "ahead": "ahead of",
        "behind": "behind",
        "not distinguishable": "not distinguishable from",
        "undetermined": "not comparable with",
    }[v]


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def summary_sentence(rows, targets=None) -> str:
    """One plain sentence for the end of a report: for each of `targets` (default: every
    compared target), the embedding against the best untrained encoder, by how much, with
    the paired interval and the verdict."""
    by_target = {r["target"]: r for r in rows}
    wanted = list(targets) if targets else list(by_target)
    missing = [t for t in wanted if t not in by_target]
    if missing:
        raise ValueError(f"no comparison for {missing}; compared: {sorted(by_target)}")
    parts = []
    for t in wanted:
        r = by_target[t]
        d, base = r["vs_untrained"], r["strongest_untrained"]
        label = {"r2": "R²", "roc_auc": "ROC AUC"}[r["metric"]]
        if d is None:
            parts.append(f"{t} ({label}) {r['embedding']['value']:.3f}, no untrained baseline")
            continue
        best = r["init"] if base == "init" else r["best_random"]
        parts.append(
            f"on {t} {label} {r['embedding']['value']:.3f} against {best['value']:.3f} "
            f"({base}), a difference of {_signed(d['value'])} "
            f"[{_signed(d['low'])}, {_signed(d['high'])}] ({d['verdict']})"
        )
    seeds = max((r["n_seeds"] for r in rows), default=0)
    return (
        f"Pretrained embedding against the best untrained encoder (the best of {seeds} "
        "random-init seeds or the run's own initialization): " + "; ".join(parts) + "."
    )
