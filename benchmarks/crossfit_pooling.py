"""Cross-fitted ROC AUC of a run's saved embeddings (`ahms-fm probe` writes them to
WORKDIR/probe/embeddings.parquet), pooled as raw probabilities (before the fix) and as
fold-standardized scores (`probe.fold_scores`, now the code), with the mean of the
per-fold AUCs beside, over 5 fold seeds (docs/results.md, CinC 2017).

    python benchmarks/crossfit_pooling.py runs/real/cinc2017_study af
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import numpy as np
import pandas as pd
from absl import logging

logging.set_verbosity(logging.ERROR)
from ahms_fm.evaluation import cohort, embeddings, probe, stats
from ahms_fm.evaluation import targets as T


def main(run: str, target: str) -> None:
    table = pd.read_parquet(os.path.join(run, "probe", "embeddings.parquet"))
    z = np.stack(table.pop("embedding").to_numpy())
    info = embeddings.read_info(embeddings.find_checkpoint(run))
    people = cohort.single(cohort.resolve_dataset(None, "datasets", info)).participants
    units = probe.make_units("participant", table, {"embedding": z})
    y, _ = probe.target_matrix(units, T.parse_targets(target), people, run)
    ok = np.isfinite(y[:, 0])
    x = units.features["embedding"]
    for seed in range(5):
        auc, strengths = {}, None
        for name, ranked in (("raw", [False]), ("standardized", [True])):
            _, pred, _, chosen, _ = probe.predictions(
                x,
                y,
                np.array([True]),
                units,
                "crossfit",
                folds=5,
                strengths=np.logspace(-1, 6, 8),
                seed=seed,
                ranked=ranked,
            )
            auc[name], strengths = stats.roc_auc(y[ok, 0], pred[ok, 0]), chosen[:, 0]
        folds = probe.stratified_folds(units.groups, y[:, 0], 5, seed + 1)
        per_fold = np.mean(
            [stats.roc_auc(y[ok & (folds == f), 0], pred[ok & (folds == f), 0]) for f in range(5)]
        )
        print(
            f"fold seed {seed}: raw pooled {auc['raw']:.3f}  fold-standardized "
            f"{auc['standardized']:.3f}  mean per fold {per_fold:.3f}  strengths {strengths}"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "af")
