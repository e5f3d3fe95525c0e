"""The probe report: report.json, report.md (the tables), predictions.csv and figures.

report.md: the probe tables (one row per target and feature set; the K random-init
seeds as one row, the best of them, and the chosen strength, marked † at an end of
its grid), the random-init seeds' values with their mean and range, and "did
pretraining help" (compare.py): per target the embedding, the best random seed,
init, hand-crafted features, the paired differences and one sentence; on a
synthetic cohort also the ceiling (the probe of the generator's true physiology,
ceiling.py) and the fraction of it that each reaches, with a footnote on what the
ceiling means (`CEILING_NOTE`).

Figures: predicted vs true for regression targets, ROC curves for binary ones
(every feature set on one plot), and a 2-D map of the participants' mean
embeddings (first two principal components) coloured by each participant target.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ahms_fm.evaluation.stats import BINARY, REGRESSION

METRIC_LABELS = {
    "mae": "MAE",
    "r2": "R²",
    "pearson_r": "Pearson r",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "balanced_accuracy": "bal. acc.",
}
CEILING = "ceiling"
CEILING_NOTE = (
    "`ceiling`: the same linear probe (same protocol, folds and bootstrap) on the synthetic "
    "generator's true per-participant physiology (its `truth_*` fields: resting heart rate, "
    "RMSSD, pulse-wave or ECG-interval shape, ...; participant targets only). It is what "
    "perfect per-participant features give a linear probe, not a strict upper bound: an "
    "embedding is a nonlinear function of the signal and may exceed it (a fraction above "
    "1), and BMI's ceiling is loose because it acts partly through absolute amplitude, "
    "which z-scoring each window removes from the signal but the ground truth keeps. "
    "Fraction of ceiling = (value − chance) / (ceiling − chance), chance 0 for R² and 0.5 "
    "for ROC AUC: 1 as good as the ground truth, 0 chance; – where the ceiling is not above "
    "chance."
)


def _cell(m: dict) -> str:
    if m is None or not np.isfinite(m["value"]):
        return "–"
    return f"{m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"


def _strength(r) -> str:
    """The chosen strength(s) over folds; † when one sits at an end of the grid."""
    chosen = [v for v in r.strength if np.isfinite(v)]
    if not chosen:
        return "–"
    lo, hi = min(chosen), max(chosen)
    text = f"{lo:.3g}" if lo == hi else f"{lo:.3g}–{hi:.3g}"
    return text + (" †" if r.grid_edge else "")


def displayed(results) -> list:
    """The results the tables show: the K random-init seeds as one row, their best
    (`compare.best_seed`), where the first seed was; everything else as it is."""
    import dataclasses

    from ahms_fm.evaluation import baselines, compare

    out = []
    for r in results:
        if not baselines.is_random(r.features):
            out.append(r)
            continue
        seeds = compare.seeds_of(results, r.target)
        if r is seeds[0]:
            best = compare.best_seed(results, r.target)
            out.append(
                dataclasses.replace(best, features=f"{baselines.RANDOM} (best of {len(seeds)})")
            )
    return out


def markdown(results, level: float = 0.95, comparison=None) -> str:
    """The probe tables (regression, binary; one row per target and feature set), the
    random-init seeds, footnotes and, with `comparison`, whether pretraining helped."""
    from ahms_fm.evaluation import compare

    pct = f"{round(level * 100)}%"
    targets = list(dict.fromkeys(r.target for r in results))
    shown = sorted(displayed(results), key=lambda r: targets.index(r.target))  # stable
    lines = []
    reg = [r for r in shown if r.kind == "regression"]
    if reg:
        lines += [
            f"Regression (value [{pct} bootstrap CI over test participants]):",
            "",
            "| target | features | protocol | n train | n test | MAE | R² | Pearson r | strength |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.target} | {r.features} | {r.protocol} | {r.n_train} | {r.n_test} | "
            + " | ".join(_cell(r.metrics.get(k)) for k in REGRESSION)
            + f" | {_strength(r)} |"
            for r in reg
        ]
        lines.append("")
    binary = [r for r in shown if r.kind == "binary"]
    if binary:
        lines += [
            f"Binary (value [{pct} bootstrap CI over test participants]):",
            "",
            "| target | features | protocol | n train | n test (positive) | ROC AUC | "
            "PR AUC | bal. acc. | strength |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.target} | {r.features} | {r.protocol} | {r.n_train} | "
            f"{r.n_test} ({r.n_positive}) | "
            + " | ".join(_cell(r.metrics.get(k)) for k in BINARY)
            + f" | {_strength(r)} |"
            for r in binary
        ]
        lines.append("")
    edges = [r for r in shown if r.grid_edge]
    if edges:
        lines += [
            "† The chosen regularization strength sat at an end of the grid "
            "(`probe.log10_strengths`) in at least one fold. At the highest end the "
            "strongest penalty won: near-constant predictions, the features carry "
            "little or no linear signal for the target. At the lowest end the weakest "
            "won: a nearly noiseless relation, the best strength may lie below the "
            "grid. (docs/evaluation.md: what a wider grid changed.) "
            + "; ".join(f"{r.target} / {r.features} ({', '.join(r.grid_edge)})" for r in edges)
            + ".",
            "",
        ]
    lines += seeds_markdown(compare.seed_summary(results))
    if comparison:
        lines += comparison_markdown(comparison, pct)
    if any(r.features == CEILING for r in results) and not any(
        c.get("ceiling") for c in comparison or ()
    ):
        lines += [CEILING_NOTE, ""]  # the comparison table says it otherwise
    return "\n".join(lines).rstrip() + "\n"


def seeds_markdown(summary) -> list[str]:
    """Every random-init seed's value per target and metric, their mean and range."""
    if not summary:
        return []
    k = len(summary[0]["values"])
    lines = [
        f"Random-init baseline, {k} seeds (value per seed; the best-of-{k} rows above "
        "are the seed best in the headline metric, R² or ROC AUC):",
        "",
        "| target | features | metric | per seed | mean | range |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary:
        values = ", ".join(f"{v:.3f}" for v in row["values"])
        lines.append(
            f"| {row['target']} | random_init | {METRIC_LABELS[row['metric']]} | "
            f"{values} | {row['mean']:.3f} | {row['min']:.3f}–{row['max']:.3f} |"
        )
    return [*lines, ""]


def _diff(d, against: str = "") -> str:
    if d is None or not np.isfinite(d["value"]):
        return "–"
    return f"{d['value']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" + (
        f" vs {against}" if against else ""
    )


def _fraction(v) -> str:
    return f"{v:.2f}" if v is not None and np.isfinite(v) else "–"


def comparison_markdown(rows, pct: str = "95%") -> list[str]:
    """The closing table: did pretraining help, per target, with one sentence each; with
    a ceiling (a synthetic cohort), its value and the fraction of it each reaches."""
    ceiling = any(r.get("ceiling") for r in rows)
    lines = [
        f"Did pretraining help? Headline metric per target; differences are embedding "
        f"minus baseline with a paired {pct} bootstrap CI (the same resampled "
        "participants for both); the best untrained encoder is the better of the best "
        "random seed (chosen on the test participants, which favours it) and init"
        + (
            "; the ceiling is the probe of the generator's true physiology, and the "
            "fraction of it is (value − chance) / (ceiling − chance) (footnote below)"
            if ceiling
            else ""
        )
        + ":",
        "",
        "| target | metric | embedding | best random seed | init | hand-crafted | "
        + (
            "ceiling | fraction of ceiling: embedding / best random / hand-crafted | "
            if ceiling
            else ""
        )
        + "embedding − best untrained [CI] | embedding − hand-crafted [CI] |",
        "|---|---|---|---|---|---|" + ("---|---|" if ceiling else "") + "---|---|",
    ]
    for r in rows:
        best = r["best_random"]
        best_cell = _cell(best) + (f" ({best['features']})" if best else "")
        share = r.get("fraction_of_ceiling") or {}
        ceiling_cells = (
            (
                f"{_cell(r.get('ceiling'))} | "
                + " / ".join(
                    _fraction(share.get(k)) for k in ("embedding", "best_random", "handcrafted")
                )
                + " | "
            )
            if ceiling
            else ""
        )
        lines.append(
            f"| {r['target']} | {METRIC_LABELS[r['metric']]} | {_cell(r['embedding'])} | "
            f"{best_cell} | {_cell(r['init'])} | {_cell(r['handcrafted'])} | {ceiling_cells}"
            f"{_diff(r['vs_untrained'], r['strongest_untrained'] or '')} | "
            f"{_diff(r['vs_handcrafted'])} |"
        )
    lines += [""] + [f"- {r['sentence']}" for r in rows] + [""]
    return lines + ([CEILING_NOTE, ""] if ceiling else [])


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score, ties together."""
    order = np.argsort(-score, kind="stable")
    y, score = y[order], score[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # end of each tie block
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def _grid(n: int, width: float = 3.6):
    # Figure objects, not pyplot: no global backend switch in a notebook or a GUI session.
    from matplotlib.figure import Figure

    cols = min(n, 4)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, width * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_predictions(results, path: Path) -> None:
    """Predicted vs true, one panel per regression target (the embedding's probe)."""
    reg = [r for r in results if r.kind == "regression" and r.features == "embedding"]
    if not reg:
        return
    fig, axes = _grid(len(reg))
    for ax, r in zip(axes, reg, strict=False):
        ax.scatter(r.y, r.pred, s=8, alpha=0.5)
        lo, hi = np.nanmin([r.y.min(), r.pred.min()]), np.nanmax([r.y.max(), r.pred.max()])
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        m = r.metrics
        ax.set_title(
            f"{r.target}: MAE {m['mae']['value']:.2f}, r {m['pearson_r']['value']:.2f}", fontsize=9
        )
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_roc(results, path: Path) -> None:
    """ROC curves, one panel per binary target, every feature set."""
    names = list(dict.fromkeys(r.target for r in results if r.kind == "binary"))
    if not names:
        return
    fig, axes = _grid(len(names))
    for ax, name in zip(axes, names, strict=False):
        for r in (r for r in displayed(results) if r.target == name):
            fpr, tpr = roc_curve(r.y, r.pred)
            ax.plot(fpr, tpr, label=f"{r.features} {r.metrics['roc_auc']['value']:.2f}")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components of the standardized rows of x."""
    x = np.where(np.isfinite(x), x, np.nanmean(x, axis=0))
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def plot_map(units, targets, participants, path: Path) -> None:
    """Participants' mean embeddings in 2-D (PCA), one panel per participant target."""
    from ahms_fm.evaluation import targets as targets_lib

    if units is None or not targets or len(units.groups) < 3:
        return
    xy = pca_2d(units.features["embedding"])
    fig, axes = _grid(len(targets))
    for ax, t in zip(axes, targets, strict=False):
        try:
            raw = targets_lib.participant_column(participants, t.column, units.groups, "")
            y, kind = targets_lib.values(t, raw)
        except ValueError:
            ax.set_visible(False)
            continue
        known = np.isfinite(y)
        ax.scatter(xy[~known, 0], xy[~known, 1], s=6, c="lightgrey")
        sc = ax.scatter(
            xy[known, 0],
            xy[known, 1],
            s=8,
            c=y[known],
            cmap="coolwarm" if kind == "binary" else "viridis",
            alpha=0.8,
        )
        fig.colorbar(sc, ax=ax, fraction=0.046)
        ax.set_title(t.name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("participants' mean embeddings, first two principal components", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write(
    out_dir,
    results,
    header: dict,
    *,
    map_units=None,
    participants=None,
    targets=(),
    comparison=None,
    retrieval=None,
    skipped=None,
) -> dict:
    """Write report.json, report.md, predictions.csv and the figures; return the report.

    `comparison`: `compare.compare`'s rows (the closing "did pretraining help" table);
    `retrieval`: `retrieval.evaluate`'s records (participant identification across time).
    """
    import pandas as pd

    from ahms_fm.evaluation import compare
    from ahms_fm.evaluation import retrieval as retrieval_lib
    from ahms_fm.jsonable import default as json_default

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    level = header.get("probe", {}).get("level", 0.95)
    table = markdown(results, level, comparison)
    section = retrieval_lib.markdown(retrieval or [], f"{level:.0%}")
    if skipped:
        section += [
            "",
            "Not probed: " + "; ".join(f"{name} ({why})" for name, why in skipped.items()) + ".",
        ]
    if section:
        table = table.rstrip("\n") + "\n" + "\n".join(section) + "\n"
    rep = {
        **header,
        "results": [r.to_json() for r in results],
        "random_init_seeds": compare.seed_summary(results),
        "comparison": comparison or [],
        "retrieval": retrieval or [],
        "skipped": dict(skipped or {}),
        "markdown": table,
    }
    (out_dir / "report.json").write_text(json.dumps(rep, indent=2, default=json_default))
    title = (
        f"# Linear probes: {header.get('checkpoint', '')} (step {header.get('step')}, "
        f"{header.get('which')})\n\ndataset: {header.get('dataset')}\n\n"
    )
    (out_dir / "report.md").write_text(title + table)
    rows = [
        pd.DataFrame(
            {
                "target": r.target,
                "features": r.features,
                "participant_index": r.groups,
                "y": r.y,
                "prediction": r.pred,
            }
        )
        for r in results
    ]
    if rows:
        pd.concat(rows).to_csv(out_dir / "predictions.csv", index=False)
    plot_predictions(results, out_dir / "pred_vs_true.png")
    plot_roc(results, out_dir / "roc.png")
    plot_map(map_units, list(targets), participants, out_dir / "map.png")
    return rep
