"""What a probe predicts: target expressions over participant labels and segment fields.

    age                     regression on the participant table's `age`
    age>50, bmi>=30         thresholded: binary
    sex, af, hypertension   binary (values 0/1 or true/false)
    rhythm==A               binary: equals a value
    segment.heart_rate      a per-segment field (regression)
    stress=segment.label in stroop_test|interview|hyperventilation
                            binary: one of several values, named `stress`

Participant targets are probed on participant-mean embeddings (the paper);
`segment.` targets on each segment's embedding, still split and resampled by
participant. Missing values (None, NaN, "") leave that unit out of that target.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from ahms_fm.data.public import STRESS_PHASES
from ahms_fm.data.synthetic import TRUTH_PREFIX

_EXPR = re.compile(
    r"^(?:(?P<name>[A-Za-z_][\w]*)=(?!=))?"
    r"(?P<column>(?:segment\.)?[A-Za-z_][\w]*)"
    r"(?:\s*(?P<op>>=|<=|==|!=|>|<| in )\s*(?P<value>[^<>=!\s][^<>=!]*))?$"
)

# What a dataset is probed for unless --targets says otherwise (docs/design.md, the issues).
DEFAULT_TARGETS = {
    "synthetic_ppg": ("age", "age>50", "bmi", "bmi>30", "sex", "hypertension", "diabetes"),
    "synthetic_ecg": ("age", "age>50", "bmi", "bmi>30", "sex", "hypertension", "af"),
    "cinc2017": ("af",),
    "ppg_bp": ("age", "age>50", "sex", "hypertension", "bmi"),
    "stress_predict": ("segment.heart_rate", "stress=segment.label in " + "|".join(STRESS_PHASES)),
}
# Binary targets that are conditions (the demographic baseline applies to these).
DEMOGRAPHICS = ("age", "sex", "bmi")


@dataclasses.dataclass(frozen=True)
class Target:
    """A parsed target expression."""

    name: str  # how it is reported
    column: str  # participant label or segment field (without the `segment.` prefix)
    level: str  # "participant" | "segment"
    op: str | None = None  # >, >=, <, <=, ==, !=, in
    value: str | None = None

    @property
    def thresholded(self) -> bool:
        return self.op is not None

    def is_condition(self) -> bool:
        """A binary participant target that is not itself a demographic."""
        return self.level == "participant" and self.column not in DEMOGRAPHICS


def parse_target(text: str) -> Target:
    """`[name=]column[ op value]` -> Target; ValueError with the grammar otherwise."""
    text = text.strip()
    m = _EXPR.match(text)
    if not m:
        raise ValueError(
            f"cannot parse target {text!r}; write e.g. age, age>50, sex, rhythm==A, "
            "segment.heart_rate or name=segment.label in a|b"
        )
    column, op = m["column"], m["op"]
    level = "segment" if column.startswith("segment.") else "participant"
    column = column.removeprefix("segment.")
    name = m["name"] or text.replace(" ", "")
    return Target(
        name, column, level, op.strip() if op else None, m["value"].strip() if op else None
    )


def parse_targets(texts) -> list[Target]:
    """Comma-separated string or sequence of expressions -> targets (names unique)."""
    if isinstance(texts, str):
        texts = [t for t in texts.split(",") if t.strip()]
    targets = [parse_target(t) for t in texts]
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"target names repeat: {names}")
    return targets


def _missing(v) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


def _number(v, target: Target) -> float:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return float(v.lower() == "true")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(
            f"target {target.name}: {target.column} has the non-numeric value "
            f"{v!r}; compare it instead, e.g. {target.column}=={v}"
        ) from None


def values(target: Target, raw) -> tuple[np.ndarray, str]:
    """(y, kind) for the raw column values of the units: y float with NaN where missing,
    kind "binary" (0/1) or "regression"."""
    missing = np.array([_missing(v) for v in raw], bool)
    y = np.full(len(raw), np.nan)
    present = [v for v, m in zip(raw, missing, strict=True) if not m]
    if target.op in ("==", "!=", "in"):
        allowed = set(target.value.split("|")) if target.op == "in" else {target.value}
        hit = np.array([str(v) in allowed or _num_eq(v, allowed) for v in present], float)
        y[~missing] = 1.0 - hit if target.op == "!=" else hit
        return y, "binary"
    y[~missing] = [_number(v, target) for v in present]
    if target.op:
        threshold = float(target.value)
        compare = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
        y[~missing] = compare[target.op](y[~missing], threshold).astype(float)
        return y, "binary"
    finite = y[~np.isnan(y)]
    kind = "binary" if len(finite) and np.isin(finite, (0.0, 1.0)).all() else "regression"
    return y, kind


def _num_eq(v, allowed) -> bool:
    try:
        return any(float(v) == float(a) for a in allowed)
    except (TypeError, ValueError):
        return False


def participant_column(participants: list[dict], column: str, index: np.ndarray, where: str):
    """The raw values of `column` for the participants at `index` (participant_index)."""
    if not any(column in p for p in participants):
        known = sorted(
            {k for p in participants for k in p} - {"participant", "participant_index", "split"}
        )
        raise ValueError(f"{where}: no participant label {column!r}; labels: {known}")
    by_index = {int(p["participant_index"]): p for p in participants}
    return [by_index[int(i)].get(column) for i in index]


def default_targets(dataset_name: str, participants: list[dict]) -> list[Target]:
    """The dataset's usual targets; for an unknown dataset, every numeric or binary label."""
    if dataset_name in DEFAULT_TARGETS:
        return parse_targets(DEFAULT_TARGETS[dataset_name])
    skip = {"participant", "participant_index", "split"}
    # A synthetic cohort's ground truth (ahms_fm.evaluation.ceiling) is no target.
    columns = sorted({k for p in participants for k in p if not k.startswith(TRUTH_PREFIX)} - skip)
    found = []
    for column in columns:
        t = Target(column, column, "participant")
        try:
            y, _ = values(t, [p.get(column) for p in participants])
        except ValueError:
            continue  # text labels need an explicit comparison
        if np.isfinite(y).sum() >= 10:
            found.append(t)
    return found
