"""What a linear probe could reach on the synthetic cohort: its ground truth as features.

The synthetic generator knows the physiology each participant's waveforms are
made from (`ahms_fm.data.synthetic.ground_truth`: resting heart rate, RMSSD,
stiffness index, reflected-wave timing, QTc, ...), and a synthetic dataset
stores it in its participant table under the prefix `truth_`. Probing those
quantities with the same linear probes as the embeddings gives the ceiling of
perfect per-participant features, and an embedding's metric can be read as a
fraction of it: `fraction_of_ceiling(value, ceiling, chance)`.

    x, names = ceiling_features(meta["participants"], units.groups, "ppg")  # None: real data
    fraction_of_ceiling(0.62, 0.80, CHANCE["roc_auc"])  # 0.4

What the ceiling is and is not:
- features are each participant's resting values (per-segment nuisance such as
  time of day, motion and noise left out), never the labels themselves;
- amplitudes are the generator's absolute ones, while a z-scored window keeps
  them only relative to its noise and its other waves, so the ceiling is a
  little loose for labels that act on amplitude (BMI, sex through the QRS);
- it is linear in these features (plus the logs below): an embedding is a
  nonlinear function of the signal and can in principle pass it, by a little.
"""

from __future__ import annotations

import math

import numpy as np

from ahms_fm.data.synthetic import TRUTH_FIELDS, TRUTH_PREFIX

# Chance level of the metrics a ceiling is reported for (higher is better).
CHANCE = {"roc_auc": 0.5, "r2": 0.0}

# Positive quantities that the generator makes multiplicatively (labels act on
# them as factors), so a label is linear in their logs, not in them; each one
# also gets a log column:
# - RMSSD: 0.035 e^(-0.02 age) 0.85^hypertension 0.75^diabetes x a lognormal
#   personal scale x mean RR, right-skewed (~15-100 ms);
# - pulse amplitude: a lognormal perfusion x e^(-0.035 BMI);
# - QRS and T amplitudes: x e^(-0.02 BMI), the QRS also x1.15 in men, x1.1 with
#   hypertension;
# - notch depth: x e^(-SI / 2.5);
# - reflected-wave delay: dT = height / SI, so log dT = log height - log SI.
LOG_FIELDS = (
    "truth_rmssd",
    "truth_pulse_amplitude",
    "truth_qrs_amplitude",
    "truth_t_amplitude",
    "truth_notch_depth",
    "truth_reflection_delay",
)


def ceiling_features(
    participants: list[dict], groups: np.ndarray, modality: str
) -> tuple[np.ndarray, list[str]] | None:
    """([n, k] float32 ground-truth features, their k names) of the participants `groups`.

    `participants` is a dataset's participant table (rows with a
    `participant_index`), `groups` the participant_index of each of the n
    units. Columns: `TRUTH_FIELDS[modality]`, then `log_<field>` for those of
    `LOG_FIELDS`. A missing value (PR in atrial fibrillation, which has no P
    wave) is filled with the column's mean over the n units; no label is used.
    None where the table has no truth fields (a real dataset, or a modality
    the generator does not make).
    """
    fields = TRUTH_FIELDS.get(modality)
    present = {k for p in participants for k in p if k.startswith(TRUTH_PREFIX)}
    if fields is None or not present:
        return None
    missing = [f for f in fields if f not in present]
    if missing:
        raise ValueError(
            f"the participant table has ground truth {sorted(present)} but lacks {missing} "
            f"of modality {modality!r}: was it built for another modality?"
        )
    by_index = {int(p["participant_index"]): p for p in participants}
    groups = np.asarray(groups).ravel()
    unknown = [int(g) for g in groups if int(g) not in by_index]
    if unknown:
        raise ValueError(f"participant_index {unknown[:5]} not in the participant table")
    x = np.array(
        [[_number(by_index[int(g)].get(f)) for f in fields] for g in groups], np.float64
    ).reshape(len(groups), len(fields))
    logs = [j for j, f in enumerate(fields) if f in LOG_FIELDS]
    if np.any(x[:, logs] <= 0):
        raise ValueError(f"ground truth {[fields[j] for j in logs]} must be positive")
    x = np.concatenate([x, np.log(x[:, logs])], axis=1)
    names = list(fields) + [f"log_{fields[j]}" for j in logs]
    for j in range(x.shape[1]):
        bad = ~np.isfinite(x[:, j])
        if bad.any():
            x[bad, j] = x[~bad, j].mean() if (~bad).any() else 0.0
    return x.astype(np.float32), names


def _number(v) -> float:
    if v is None:
        return math.nan
    return float(v)


def fraction_of_ceiling(value, ceiling, chance):
    """(value - chance) / (ceiling - chance): how far from chance to the ceiling a metric got.

    For metrics where higher is better and `chance` is what a probe without
    information scores: 0.5 for ROC AUC, 0 for R^2 (`CHANCE`). 1 = as good as
    perfect per-participant features, 0 = chance, below 0 = worse than chance;
    above 1 is possible (sampling noise, or an embedding's nonlinearity doing
    better than a linear probe on the ground truth). NaN where the ceiling is
    not above chance (the label leaves no linear trace in the physiology; no
    fraction means anything then) or an input is NaN. Arrays broadcast;
    scalars give a float.
    """
    value, ceiling, chance = np.broadcast_arrays(
        *(np.asarray(v, np.float64) for v in (value, ceiling, chance))
    )
    above = ceiling > chance
    with np.errstate(invalid="ignore"):
        out = np.where(above, (value - chance) / np.where(above, ceiling - chance, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out
