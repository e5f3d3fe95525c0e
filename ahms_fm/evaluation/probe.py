"""Linear probes on frozen embeddings, with baselines, honest statistics and a report.

    ahms-fm probe --checkpoint runs/demo [--dataset DIR] [--targets age,age>50,sex] [--out DIR]
    ahms-fm probe --checkpoint runs/demo --steps all          # learning curves (curves.py)
    ahms-fm probe --checkpoint runs/demo --train_dataset A --test_dataset B:test  # external

The path: embed every segment of the cohort (cohort.py: one dataset, or a
training and a test one), average each participant's segments (participant
targets) or keep segments (`segment.` targets), standardize, fit ridge
(regression) or L2 logistic regression (binary) with the strength chosen by
k-fold cross-validation over participants (a choice at an end of the grid is
warned about and marked), and score the held-out participants with 95%
bootstrap intervals. Baselines go through the same probes: K randomly
initialized encoders and the run's own step-0 initialization, batch norm
re-estimated on training windows (baselines.py), hand-crafted features (heart
rate, HRV, signal statistics), for conditions, demographics (age, sex, BMI), and,
on a synthetic cohort, the ceiling: the generator's true per-participant physiology
(ceiling.py; participant targets only). The report closes with whether pretraining
helped (compare.py): the embedding minus the strongest untrained encoder, and minus
the hand-crafted features, with paired bootstrap intervals, and each one's fraction
of the ceiling.

Protocols: `split` trains on the dataset's train + validation participants and
tests on its test participants; `crossfit` (for small cohorts) rotates k outer
folds over all participants, so every participant is predicted once by a probe
that never saw it. `auto` picks `split` when the test split has at least
`min_test_participants` participants. `external` (with a training and a test
dataset) trains on every participant of the first and tests on the second.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from absl import logging

from ahms_fm.data.synthetic import TRUTH_PREFIX
from ahms_fm.evaluation import baselines as baselines_lib
from ahms_fm.evaluation import ceiling as ceiling_lib
from ahms_fm.evaluation import cohort as cohort_lib
from ahms_fm.evaluation import compare, embeddings, retrieval
from ahms_fm.evaluation import targets as targets_lib
from ahms_fm.evaluation.protocols import (
    EDGE_MEANING,
    HELD_OUT,
    Result,
    Units,
    fit_predict,
    fold_scores,
    grid_edges,
    group_means,
    make_units,
    predictions,
    probe_units,
    protocol_for,
    stratified_folds,
    target_matrix,
    unprobeable,
)

# The probe's API, with the fitting machinery whose home is protocols.py.
__all__ = [  # noqa: RUF022
    "probe_defaults",
    "check_targets",
    "NoTargets",
    "Evaluation",
    "prepare",
    "embed",
    "baseline_features",
    "probe_features",
    "compare_results",
    "run_probe",
    "ceiling_units",
    "EDGE_MEANING",
    "HELD_OUT",
    "Result",
    "Units",
    "fit_predict",
    "fold_scores",
    "grid_edges",
    "group_means",
    "make_units",
    "predictions",
    "probe_units",
    "protocol_for",
    "stratified_folds",
    "target_matrix",
    "unprobeable",
]


def probe_defaults():
    """The `probe` section of the recipe (ahms_fm/configs/common.py), for checkpoints
    without one."""
    from ahms_fm.configs import common

    return common.recipe().probe


def check_targets(ev) -> dict[str, str]:
    """Before anything is embedded: the participant targets whose labels, over the cohort's
    participants, cannot support a probe (no label, one class): name -> reason."""
    participants = ev.cohort.participants
    found = {}
    for t in ev.targets:
        if t.level != "participant":
            continue
        raw = [p.get(t.column) for p in participants]
        if not any(t.column in p for p in participants):
            found[t.name] = f"the participant table has no column {t.column!r}"
            continue
        y, kind = targets_lib.values(t, raw)
        if not np.isfinite(y).any():
            found[t.name] = "no participant has a label"
        elif kind == "binary" and not 0 < np.nansum(y) < np.isfinite(y).sum():
            found[t.name] = f"one class only (every label is {int(y[np.isfinite(y)][0])})"
    return found


# ----------------------------------------------------------------------------
# The whole evaluation.
# ----------------------------------------------------------------------------

KNOWN_BASELINES = ("random_init", "init", "handcrafted", "demographic", "ceiling")


class NoTargets(ValueError):
    """None of the requested targets can be probed; the message gives each one's reason."""

    def __init__(self, where: str, reasons: dict):
        self.reasons = dict(reasons)
        super().__init__(
            f"{where}: none of the targets can be probed: "
            + "; ".join(f"{name} ({why})" for name, why in reasons.items())
        )


resolve_dataset = cohort_lib.resolve_dataset  # where it used to live (the notebook uses it)


@dataclasses.dataclass
class Evaluation:
    """What one `ahms-fm probe` evaluates, fixed before any encoder runs."""

    step_dir: Path  # the checkpoint (for --steps: the latest one, whose config rules)
    config: object  # the run's training config (ConfigDict)
    pc: object  # the probe settings: recipe defaults < the checkpoint's < overrides
    which: str
    cohort: cohort_lib.Cohort
    targets: list
    baselines: list
    out_dir: Path

    @property
    def random_seeds(self) -> list[int]:
        """The random-init baseline's initialization seeds (none equal to the run's)."""
        if "random_init" not in self.baselines:
            return []
        return baselines_lib.random_seeds(self.config.seed, self.pc.seed, self.pc.random_seeds)

    def header(self) -> dict:
        """The settings a report names (its own checkpoint and step are added to it)."""
        return {
            "which": self.which,
            "dataset": self.cohort.where,
            "cohort": self.cohort.describe(),
            "targets": [t.name for t in self.targets],
            "baselines": self.baselines,
            "random_seeds": self.random_seeds,
            "probe": self.pc.to_dict(),
        }


def prepare(
    checkpoint,
    *,
    dataset_arg=None,
    train_dataset=None,
    test_dataset=None,
    data_dir="datasets",
    target_texts=None,
    out_dir=None,
    which=None,
    baselines=None,
    probe_overrides=None,
) -> Evaluation:
    """Resolve a checkpoint, the cohort, the targets and the settings (cheap: no encoder)."""
    step_dir = embeddings.find_checkpoint(checkpoint)
    info = embeddings.read_info(step_dir)
    pc = probe_defaults()
    pc.update(info["config"].get("probe", {}))
    pc.update(probe_overrides or {})
    if (train_dataset is None) != (test_dataset is None):
        raise ValueError("external validation needs both --train_dataset and --test_dataset")
    if train_dataset is not None:
        if dataset_arg:
            raise ValueError("--dataset and --train_dataset/--test_dataset exclude each other")
        cohort = cohort_lib.external(
            cohort_lib.part(train_dataset, data_dir, info),
            cohort_lib.part(test_dataset, data_dir, info),
        )
        pc.protocol = "external"
    else:
        cohort = cohort_lib.single(cohort_lib.resolve_dataset(dataset_arg, data_dir, info))
    baselines = pc.baselines if baselines is None else baselines
    baselines = [
        b for b in (baselines.split(",") if isinstance(baselines, str) else baselines) if b
    ]
    unknown = set(baselines) - set(KNOWN_BASELINES)
    if unknown:
        raise ValueError(
            f"unknown baselines {sorted(unknown)}; known: {', '.join(KNOWN_BASELINES)}"
        )
    if pc.random_seeds < 1 and "random_init" in baselines:
        raise ValueError(f"probe.random_seeds must be at least 1, got {pc.random_seeds}")
    return Evaluation(
        step_dir,
        embeddings.config_from_json(info["config"]),
        pc,
        which or pc.which,
        cohort,
        _targets(cohort, target_texts),
        baselines,
        Path(out_dir or step_dir.parent.parent / "probe"),
    )


def _targets(cohort: cohort_lib.Cohort, target_texts) -> list:
    """The given targets, or the (training) dataset's usual ones that every part has."""
    if target_texts:
        return targets_lib.parse_targets(target_texts)
    found = targets_lib.default_targets(cohort.names[0], cohort.participants)
    labels = {k for p in cohort.participants for k in p}
    if cohort.external:  # only what both sides label
        sides = [
            {k for p in cohort.participants if p["split"] == s for k in p}
            for s in ("train", "test")
        ]
        labels = sides[0] & sides[1]
    found = [t for t in found if t.level == "segment" or t.column in labels]
    if not found:
        raise ValueError(
            f"{cohort.where}: no targets given and none found in the participant table"
        )
    return found


def embed(ev: Evaluation, encoder, progress: bool):
    """(segment table, [n, d]) of the cohort through `encoder`."""
    return cohort_lib.embed(encoder, ev.cohort, batch_size=ev.pc.batch_size, progress=progress)


def baseline_features(ev: Evaluation, progress: bool) -> dict:
    """Per-segment features of the baselines that go through the probes like the
    embedding: random_init/<i> (K seeds), init, handcrafted."""
    pc, features = ev.pc, {}
    if {"random_init", "init"} & set(ev.baselines):
        windows = cohort_lib.calibration_windows(ev.cohort, pc.calibration_windows)
        untrained = baselines_lib.untrained_encoders(
            ev.config,
            ev.step_dir,
            ev.which,
            windows,
            seeds=ev.random_seeds,
            passes=pc.calibration_passes,
            init="init" in ev.baselines,
        )
        for name, encoder in untrained.items():
            features[name] = embed(ev, encoder, progress)[1]
    if "handcrafted" in ev.baselines:
        features["handcrafted"], _ = cohort_lib.handcrafted(ev.cohort, ev.config.modality, progress)
    return features


def probe_features(
    ev: Evaluation,
    table,
    features: dict,
    *,
    demographic: bool,
    ceiling: bool = False,
    skipped: dict | None = None,
):
    """Every probe of `features` (per segment, rows of `table`) at both levels:
    (results, the participant-level units or None). `demographic` and `ceiling` add
    those per-participant feature sets to the participant-level probes (where the
    participant table has what they need)."""
    results, map_units = [], None
    participants = ev.cohort.participants
    for level in ("participant", "segment"):
        level_targets = [t for t in ev.targets if t.level == level]
        if not level_targets:
            continue
        units = make_units(level, table, features)
        if level == "participant" and demographic:
            demo = _demographics(participants, units.groups)
            if demo is not None:
                units.features["demographic"] = demo
        if level == "participant" and ceiling:
            truth = ceiling_units(participants, units.groups, ev.config.modality, ev.cohort.where)
            if truth is not None:
                units.features[CEILING] = truth
        only = {
            t.name: [f for f in units.features if f != "demographic"]
            + (["demographic"] if t.is_condition() else [])
            for t in level_targets
        }
        results += probe_units(
            units, level_targets, participants, ev.pc, ev.cohort.where, only, skipped
        )
        if level == "participant":
            map_units = units
    return results, map_units


def compare_results(ev: Evaluation, results) -> list[dict]:
    """`compare.compare` with the evaluation's bootstrap settings."""
    return compare.compare(results, n_boot=ev.pc.n_boot, level=ev.pc.level, seed=ev.pc.seed)


def run_probe(
    checkpoint,
    *,
    dataset_arg=None,
    train_dataset=None,
    test_dataset=None,
    data_dir="datasets",
    target_texts=None,
    out_dir=None,
    which=None,
    baselines=None,
    probe_overrides=None,
    progress=True,
) -> dict:
    """The whole evaluation of one checkpoint; writes the report into `out_dir`.

    `train_dataset` and `test_dataset` (instead of `dataset_arg`) validate externally:
    the probes train on every participant of the first and test on every one of the
    second. Returns the report dict (also written as report.json).
    """
    from ahms_fm.evaluation import report

    ev = prepare(
        checkpoint,
        dataset_arg=dataset_arg,
        train_dataset=train_dataset,
        test_dataset=test_dataset,
        data_dir=data_dir,
        target_texts=target_texts,
        out_dir=out_dir,
        which=which,
        baselines=baselines,
        probe_overrides=probe_overrides,
    )
    skipped = check_targets(ev)  # before any embedding: fail fast, write nothing
    if len(skipped) == len(ev.targets):
        raise NoTargets(ev.cohort.where, skipped)
    encoder = embeddings.load_encoder(ev.step_dir, which=ev.which)
    table, z = embed(ev, encoder, progress)
    features = {"embedding": z, **baseline_features(ev, progress)}
    results, map_units = probe_features(
        ev,
        table,
        features,
        demographic="demographic" in ev.baselines,
        ceiling=CEILING in ev.baselines,
        skipped=skipped,
    )
    if not any(r.features == "embedding" for r in results):
        raise NoTargets(ev.cohort.where, skipped)
    ev.out_dir.mkdir(parents=True, exist_ok=True)  # only once there is something to write
    embeddings.write_embeddings(
        table.assign(embedding=list(z)),
        ev.out_dir / "embeddings.parquet",
        metadata={
            "checkpoint": str(ev.step_dir),
            "step": encoder.step,
            "which": ev.which,
            "modality_spec": encoder.spec.to_dict(),
            "dataset": ev.cohort.where,
        },
    )
    identified = (
        retrieval.evaluate(table, features, n_boot=ev.pc.n_boot, level=ev.pc.level, seed=ev.pc.seed)
        if ev.pc.retrieval
        else []
    )
    rep = report.write(
        ev.out_dir,
        results,
        {"checkpoint": str(ev.step_dir), "step": encoder.step, **ev.header()},
        map_units=map_units,
        participants=ev.cohort.participants,
        targets=[t for t in ev.targets if t.level == "participant"],
        comparison=compare_results(ev, results),
        retrieval=identified,
        skipped=skipped,
    )
    rep["out_dir"] = str(ev.out_dir)
    return rep


CEILING = compare.CEILING  # the feature set of the generator's ground truth (ceiling.py)


def ceiling_units(participants, groups, modality: str, where: str):
    """[n, k] ground-truth features of the participants `groups` (`ceiling.ceiling_features`),
    or None: a table without ground truth (real data), or one where only some of these
    participants have it (a synthetic and a real cohort together), which is warned about."""
    by_index = {int(p["participant_index"]): p for p in participants}
    has = np.array(
        [any(k.startswith(TRUTH_PREFIX) for k in by_index.get(int(g), ())) for g in groups], bool
    )
    if not has.any():
        return None
    if not has.all():
        logging.warning(
            "%s: %d of %d participants have no ground truth (truth_* fields), so no ceiling",
            where,
            int((~has).sum()),
            len(has),
        )
        return None
    found = ceiling_lib.ceiling_features(participants, groups, modality)
    return None if found is None else found[0]


def _demographics(participants, groups):
    """[n, 3] age, sex, BMI per participant (the paper's baseline for conditions); None
    where a column is absent. A column of two words (sex as Female/Male) is coded 0/1 in
    alphabetical order."""
    if not all(any(c in p for p in participants) for c in targets_lib.DEMOGRAPHICS):
        return None
    cols = []
    for column in targets_lib.DEMOGRAPHICS:
        raw = targets_lib.participant_column(participants, column, groups, "")
        words = sorted({v for v in raw if isinstance(v, str) and v})
        if len(words) == 2 and all(isinstance(v, str) or v is None for v in raw):
            raw = [words.index(v) if v in words else None for v in raw]
        t = targets_lib.Target(column, column, "participant")
        cols.append(targets_lib.values(t, raw)[0])
    return np.stack(cols, axis=1).astype(np.float32)


if __name__ == "__main__":  # python -m ahms_fm.evaluation.probe: the command line
    from ahms_fm.evaluation import command

    command.run()
