"""The paper's Table 2 and Table 3 beside ours, from the ablation sweep's pooled summary
(`ahms-fm sweep --sweep configs/sweeps/ablations.py --summary` writes groups.csv).

    python benchmarks/ablation_tables.py runs/sweeps/ablations/groups.csv

Prints Markdown: Table 2 (participant- vs segment-level positives) and Table 3 (the
representation's effective rank by variant), each with our mean over seeds, its 95%
t-interval, the difference from the recipe paired by seed, and the paper's PPG numbers.
"""

import csv
import math
import sys

# Abbaspourazad et al., ICLR 2024: PPG, participant-level vs segment-level positives
# (Table 2) and the effective rank of the embeddings by variant (Table 3).
PAPER_TABLE2 = {  # metric: (participant, segment)
    "report/age>50/roc_auc": (0.976, 0.900),
    "report/age/mae": (3.19, 6.60),
    "report/bmi>30/roc_auc": (0.918, 0.766),
    "report/bmi/mae": (2.54, 4.05),
    "report/sex/roc_auc": (0.993, 0.870),
}
PAPER_TABLE3 = {"recipe": 104.1, "no_koleo": 101.3, "simclr": 98.9, "byol": 51.2}
NAMES = {
    "report/age>50/roc_auc": "age > 50 (ROC AUC)",
    "report/age/mae": "age (MAE, years)",
    "report/bmi>30/roc_auc": "BMI > 30 (ROC AUC)",
    "report/bmi/mae": "BMI (MAE)",
    "report/sex/roc_auc": "sex (ROC AUC)",
    "report/age/r2": "age (R²)",
    "report/hypertension/roc_auc": "hypertension (ROC AUC)",
    "report/diabetes/roc_auc": "diabetes (ROC AUC)",
}
LOWER_IS_BETTER = ("mae", "loss")


def _f(x) -> float:
    return float(x) if x not in ("", None) else math.nan


N_MAX = 0  # seeds of the most complete group; a cell with fewer says how many


def _cell(r, diff=False, digits=3) -> str:
    keys = ("diff", "diff_low", "diff_high") if diff else ("mean", "low", "high")
    m, lo, hi = (_f(r[k]) for k in keys)
    if math.isnan(m):
        return "–"
    sign = "+" if diff else ""
    text = f"{m:{sign}.{digits}f}"
    text = text if math.isnan(lo) else f"{text} [{lo:{sign}.{digits}f}, {hi:{sign}.{digits}f}]"
    return text if diff or int(r["n"]) >= N_MAX else f"{text} (n={r['n']})"


def main(path: str) -> None:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    at = {(r["group"], r["metric"]): r for r in rows}
    global N_MAX
    n = N_MAX = max(int(r["n"]) for r in rows)
    print(
        f"**Table 2 analogue** (mean over {n} seeds [95% t-interval]; the difference is "
        "segment-level minus the recipe, paired by seed):\n"
    )
    print(
        "| target | recipe (participant-level) | segment-level | difference | paper: "
        "participant | paper: segment |"
    )
    print("|---|---|---|---|---|---|")
    for metric in [*PAPER_TABLE2, "report/age/r2", "report/hypertension/roc_auc"]:
        a, b = at.get(("recipe", metric)), at.get(("segment_level", metric))
        if not a or not b:
            continue
        paper = PAPER_TABLE2.get(metric)
        cells = [f"{p:g}" for p in paper] if paper else ["–", "–"]
        print(
            f"| {NAMES[metric]} | {_cell(a)} | {_cell(b)} | {_cell(b, diff=True)} | "
            f"{cells[0]} | {cells[1]} |"
        )
    print(
        f"\n**Table 3 analogue**: effective rank of the validation embeddings (uncentered, "
        f"as the paper's most likely; centered beside), mean over {n} seeds:\n"
    )
    print("| variant | effective rank | − recipe | centered | paper (PPG, 256-d) |")
    print("|---|---|---|---|---|")
    for group in ("recipe", "segment_level", "no_koleo", "simclr", "byol"):
        r = at.get((group, "val/effective_rank"))
        c = at.get((group, "val/effective_rank_centered"))
        if not r:
            continue
        diff = "–" if group == "recipe" else _cell(r, diff=True, digits=1)
        paper = PAPER_TABLE3.get(group)
        print(
            f"| {group} | {_cell(r, digits=1)} | {diff} | "
            f"{_cell(c, digits=1) if c else '–'} | {paper if paper else '–'} |"
        )
    print(
        f"\n**Every variant's probes** (mean over {n} seeds; difference from the recipe "
        "paired by seed):\n"
    )
    metrics = [
        "report/age/r2",
        "report/age>50/roc_auc",
        "report/hypertension/roc_auc",
        "report/sex/roc_auc",
        "report/bmi>30/roc_auc",
    ]
    print("| variant | " + " | ".join(NAMES[m] for m in metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for group in ("recipe", "segment_level", "no_koleo", "simclr", "byol"):
        cells = []
        for m in metrics:
            r = at.get((group, m))
            if not r:
                cells.append("–")
                continue
            cells.append(
                _cell(r)
                if group == "recipe"
                else f"{_f(r['mean']):.3f} ({_cell(r, diff=True)}"
                + (f", n={r['n']})" if int(r["n"]) < N_MAX else ")")
            )
        print(f"| {group} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
