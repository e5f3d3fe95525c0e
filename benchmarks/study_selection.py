"""How the study scale was chosen (docs/results.md, "Choosing the study scale"):
validation-side probes of candidate runs, the test participants left out.

    python benchmarks/study_selection.py WORKDIR 300,450

Participant means of the teacher's embeddings at the given steps, 5-fold
cross-fitted ridge over the train + validation participants (ROC AUC of the ridge
score for binary targets), beside 5 random-init encoders (batch-norm statistics
re-estimated) and hand-crafted features, whose numbers are cached in the dataset
folder. A study script: the reported numbers come from `ahms-fm probe`.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import numpy as np
from absl import logging

logging.set_verbosity(logging.ERROR)
from ahms_fm.data import dataset
from ahms_fm.evaluation import embeddings as E
from ahms_fm.evaluation import probe as P
from ahms_fm.evaluation import stats
from ahms_fm.evaluation import targets as T
from ahms_fm.evaluation.features import handcrafted_features

wd = sys.argv[1]
steps = [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 and sys.argv[2] else [None]
K = 5
TARGETS = T.parse_targets("age,age>50,hypertension,sex,bmi")


def embed_all(enc, path):
    frames = [
        E.embed_split(enc, dataset.load_split(path, s), batch_size=256, progress=False)
        for s in dataset.SPLITS
    ]
    import pandas as pd

    t = pd.concat(frames, ignore_index=True)
    return t.drop(columns=["embedding"]), np.stack(t["embedding"].to_numpy())


def score(table, feats, participants):
    units = P.make_units("participant", table, feats)
    keep = ~units.is_test  # validation-side choice: the test participants are left out
    units = P.Units(
        units.level,
        units.groups[keep],
        np.ones(keep.sum(), bool),
        {k: v[keep] for k, v in units.features.items()},
        None,
    )
    y, kinds = P.target_matrix(units, TARGETS, participants, "")
    binary = np.array([k == "binary" for k in kinds])
    out = {}
    for name, x in units.features.items():
        _, pred, _, _, _ = P.predictions(
            x,
            y,
            np.zeros(len(kinds), bool),
            units,
            "crossfit",
            folds=5,
            strengths=np.logspace(-2, 7, 10),
            seed=0,
            ranked=binary,  # AUC of fold-standardized scores (probe.fold_scores)
        )
        r = {}
        for j, t in enumerate(TARGETS):
            ok = np.isfinite(y[:, j]) & np.isfinite(pred[:, j])
            r[t.name] = (
                stats.roc_auc(y[ok, j], pred[ok, j])
                if binary[j]
                else stats.r2(y[ok, j], pred[ok, j])
            )
        out[name] = r
    return out


first = E.find_checkpoint(wd, steps[0])
enc0 = E.load_encoder(first)
path = P.resolve_dataset(None, "datasets", E.read_info(first))
meta = dataset.load_metadata(path)
parts = meta["participants"]
cache = f"{path}/baselines_k{K}_notest.json"
res = {}
if os.path.exists(cache):
    base = json.load(open(cache))
else:
    t0 = time.time()
    table, _ = embed_all(enc0, path)
    feats = {}
    tr = dataset.load_split(path, "train")
    win = dataset.read_signals(tr, np.arange(min(len(tr), 128)))
    for s in range(K):
        r = E.calibrate_batch_norm(E.random_encoder(enc0.config, seed=1000 + s), win, passes=40)
        feats[f"rand{s}"] = embed_all(r, path)[1]
    hc = []
    for sp in dataset.SPLITS:
        spl = dataset.load_split(path, sp)
        for a in range(0, len(spl), 2048):
            idx = np.arange(a, min(a + 2048, len(spl)))
            hc.append(
                handcrafted_features(
                    dataset.read_signals(spl, idx), spl.spec.sample_rate, enc0.config.modality
                )[0]
            )
    feats["handcrafted"] = np.concatenate(hc)
    base = score(table, feats, parts)
    json.dump(base, open(cache, "w"))
    print(f"baselines {time.time() - t0:.0f}s")
for t in TARGETS:
    vals = [base[f"rand{s}"][t.name] for s in range(K)]
    print(
        f"{t.name:14s} rand mean {np.mean(vals):.3f} range [{min(vals):.3f},{max(vals):.3f}]"
        f"  handcrafted {base['handcrafted'][t.name]:.3f}"
    )
for st in steps:
    for which in ("teacher",):
        enc = E.load_encoder(wd, which=which, step=st)
        table, z = embed_all(enc, path)
        r = score(table, {"emb": z}, parts)["emb"]
        print(
            f"step {enc.step} {which}: " + "  ".join(f"{k} {v:.3f}" for k, v in r.items()),
            flush=True,
        )
