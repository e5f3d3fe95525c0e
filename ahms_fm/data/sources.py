"""The datasets `ahms-fm ingest` can build: the synthetic cohort, the real public
datasets in their original layouts, and a bring-your-own folder.

Each function returns a `dataset.Source`: the participant table (labels) and a
generator of preprocessed segments for any list of participants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ahms_fm.data import public, readers, synthetic
from ahms_fm.data.dataset import SegmentBatch, Source
from ahms_fm.data.preprocess import ModalitySpec, QualitySpec, preprocess_windows, segment_recording
from ahms_fm.data.recording import DataError, Recording

SYNTHETIC_CHUNK = 256  # segments generated and preprocessed together


# ----------------------------------------------------------------------------
# The synthetic cohort.
# ----------------------------------------------------------------------------


def synthetic_dataset(modality: str) -> str:
    """The synthetic cohort's dataset name for `modality`: synthetic_ppg, synthetic_ecg."""
    return f"synthetic_{modality}"


def is_synthetic(config) -> bool:
    """Whether `config` trains or ingests the synthetic cohort."""
    return config.data.dataset == synthetic_dataset(config.modality)


def synthetic_name(
    spec: ModalitySpec, participants: int, segments_per_participant: int, seed: int
) -> str:
    """The synthetic cohort's dataset config name: its size, seed, what a window is and
    the generator's version (so cohorts of other windows, rates, channels or generators
    never share a folder)."""
    return (
        f"p{participants}_s{segments_per_participant}_seed{seed}_"
        f"{spec.window_seconds:g}s_{spec.sample_rate:g}hz_{spec.channels}ch_"
        f"v{synthetic.VERSION}"
    )


def synthetic_source(
    spec: ModalitySpec,
    quality: QualitySpec,
    *,
    participants: int,
    segments_per_participant: int,
    seed: int = 0,
) -> Source:
    """`synthetic_ppg` or `synthetic_ecg`: `participants` x `segments_per_participant`."""
    if spec.modality not in ("ppg", "ecg"):
        raise ValueError(f"no synthetic cohort for modality {spec.modality!r}")
    table = synthetic.sample_participants(seed, participants)
    ids = [f"s{i:07d}" for i in range(participants)]
    # Labels, and the physiology the signals are made from (`truth_*`: the features
    # of the probes' ceiling, ahms_fm.evaluation.ceiling; never targets).
    truth = synthetic.ground_truth(table, spec.modality)
    labels = {
        pid: {
            **{f: table[f][i].item() for f in synthetic.PARTICIPANT_FIELDS},
            **{f: v[i].item() for f, v in truth.items()},
        }
        for i, pid in enumerate(ids)
    }
    row_of = {pid: i for i, pid in enumerate(ids)}
    per = segments_per_participant

    def generate(index, segment):
        if spec.modality == "ppg":
            return synthetic.ppg_segments(
                seed, table, index, segment, spec.sample_rate, spec.window_seconds, spec.channels
            )
        return synthetic.ecg_segments(
            seed, table, index, segment, spec.sample_rate, spec.window_seconds
        )

    def segments(wanted: list[str]) -> Iterator[SegmentBatch]:
        rows = np.repeat([row_of[p] for p in wanted], per)
        seg = np.tile(np.arange(per), len(wanted))
        chunk = max(per, SYNTHETIC_CHUNK // per * per)  # whole participants per chunk
        for start in range(0, len(rows), chunk):
            index, segment = rows[start : start + chunk], seg[start : start + chunk]
            s = preprocess_windows(generate(index, segment), spec, quality)
            n = len(index)
            yield SegmentBatch(
                participant=[ids[i] for i in index],
                recording=[f"{ids[i]}/{k}" for i, k in zip(index, segment, strict=True)],
                segment=segment,
                offset_s=np.zeros(n),
                start_time=np.full(n, np.nan),
                signal=s.signal,
                heart_rate=s.heart_rate,
                quality=s.quality,
                reason=s.reason,
            )

    return Source(
        name=synthetic_dataset(spec.modality),
        config_name=synthetic_name(spec, participants, per, seed),
        description=(
            f"Synthetic {spec.modality.upper()} cohort (ahms_fm.data.synthetic): "
            f"{participants} participants x {per} segments, seed {seed}."
        ),
        participants=labels,
        segments=segments,
    )


# ----------------------------------------------------------------------------
# Sources made of recordings (real datasets, bring-your-own).
# ----------------------------------------------------------------------------


def recording_source(
    name: str,
    description: str,
    participants: dict[str, dict],
    recordings: Callable[[set[str], list], Iterable[Recording]],
    spec: ModalitySpec,
    quality: QualitySpec,
    *,
    hop_seconds: float = 0.0,
    max_pad_fraction: float = 0.0,
    segment_label: Callable[[Recording, np.ndarray], list[str]] | None = None,
    citation: str = "",
    homepage: str = "",
    on_error: str = "raise",
) -> Source:
    """A source over `recordings(ids, errors)`: the recordings of those participants,
    read lazily (one at a time, so memory stays bounded).

    A file that cannot be read (a `DataError`) stops the run (`on_error="raise"`)
    or is reported by name into `errors` and skipped (`"skip"`); readers apply
    the same policy to the files they walk. Nothing half-read is kept.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    source = Source(
        name=name,
        description=description,
        participants=participants,
        segments=None,
        citation=citation,
        homepage=homepage,
    )

    def segments(wanted: list[str]) -> Iterator[SegmentBatch]:
        # Any order will do: the dataset's keys put records in participant order.
        for rec in recordings(set(wanted), source.errors):
            try:
                s = segment_recording(rec, spec, quality, hop_seconds, max_pad_fraction)
            except DataError as e:
                if on_error == "raise":
                    raise
                source.errors.append((e.path, e.problem))
                continue
            n = len(s.reason)
            yield SegmentBatch(
                participant=[rec.participant] * n,
                recording=[rec.recording] * n,
                segment=np.arange(n),
                offset_s=s.offset_s,
                start_time=rec.start_time + s.offset_s,
                signal=s.signal,
                heart_rate=s.heart_rate,
                quality=s.quality,
                reason=s.reason,
                label=segment_label(rec, s.offset_s) if segment_label and n else None,
                too_short=int(s.too_short),
                owner=rec.participant,
                pad_s=s.pad_s,
            )

    source.segments = segments
    return source


def _from_reader(reader, root, on_error):
    """Adapt a lazy reader `reader(root, on_error, errors) -> (iterator, labels)`."""
    _, labels = reader(root, on_error=on_error, errors=[])

    def recordings(wanted, errors):
        it, _ = reader(root, on_error=on_error, errors=errors)
        return (rec for rec in it if rec.participant in wanted)

    return labels, recordings


def stress_predict_source(
    root, spec, quality, *, hop_seconds=0.0, max_pad_fraction=0.0, on_error="raise"
):
    """Stress-Predict: Empatica E4 wrist BVP (64 Hz) with accelerometer, 35 sessions.

    Segment label: the task phase covering the window's middle (Time_logs.xlsx),
    "" outside the logged schedule.
    """
    labels, recordings = _from_reader(public.read_stress_predict, root, on_error)

    def phase(rec, offsets):
        phases = labels[rec.participant]["phases"]
        middle = rec.start_time + np.asarray(offsets) + spec.window_seconds / 2
        return [next((name for name, a, b in phases if a <= m < b), "") for m in middle]

    table = {
        p: {"mean_hr": v["mean_hr"], "session_date": v["session_date"], "phases": v["phases"]}
        for p, v in labels.items()
    }
    return recording_source(
        "stress_predict",
        "Stress-Predict (Iqbal et al., Sensors 2022): Empatica E4 wrist PPG "
        "during a stress protocol; segment labels are task phases.",
        table,
        recordings,
        spec,
        quality,
        hop_seconds=hop_seconds,
        max_pad_fraction=max_pad_fraction,
        segment_label=phase,
        on_error=on_error,
        citation="Iqbal et al., Sensors 22(21):8135, 2022",
        homepage="https://github.com/italha-d/Stress-Predict-Dataset",
    )


def ppg_bp_source(root, spec, quality, *, hop_seconds=0.0, max_pad_fraction=0.0, on_error="raise"):
    """PPG-BP: finger PPG at 1 kHz, 3 x 2.1 s per subject, with demographics and diagnoses."""
    labels, recordings = _from_reader(public.read_ppg_bp, root, on_error)
    table = {
        p: {k: v for k, v in row.items() if not k.endswith("_raw")} for p, row in labels.items()
    }
    return recording_source(
        "ppg_bp",
        "PPG-BP (Liang et al., Sci Data 2018): finger PPG with age, sex, BMI, blood "
        "pressure, hypertension and diabetes.",
        table,
        recordings,
        spec,
        quality,
        hop_seconds=hop_seconds,
        max_pad_fraction=max_pad_fraction,
        on_error=on_error,
        citation="Liang et al., Sci Data 5:180020, 2018",
        homepage="https://doi.org/10.6084/m9.figshare.5459299",
    )


def cinc2017_source(
    root, spec, quality, *, hop_seconds=0.0, max_pad_fraction=0.0, on_error="raise"
):
    """PhysioNet/CinC 2017: AliveCor single-lead ECG (300 Hz), rhythm labels N/A/O/~."""
    labels, recordings = _from_reader(public.read_cinc2017, root, on_error)
    return recording_source(
        "cinc2017",
        "PhysioNet/CinC Challenge 2017 (Clifford et al.): single-lead hand-held "
        "ECG; one record = one participant; labels rhythm and af.",
        labels,
        recordings,
        spec,
        quality,
        hop_seconds=hop_seconds,
        max_pad_fraction=max_pad_fraction,
        on_error=on_error,
        citation="Clifford et al., CinC 2017",
        homepage="https://physionet.org/content/challenge-2017/",
    )


PUBLIC = {
    "stress_predict": stress_predict_source,
    "ppg_bp": ppg_bp_source,
    "cinc2017": cinc2017_source,
}


def byo_source(
    name, root, spec_file, spec, quality, *, hop_seconds=0.0, max_pad_fraction=0.0, on_error="raise"
):
    """Your own cohort: a folder of recordings described by a `readers.ByoSpec` JSON file,
    with a participants table (any label columns) and/or labels from WFDB headers."""
    byo = readers.ByoSpec.from_json(spec_file)
    root = Path(root)
    table = {}
    if byo.header_labels:
        table = readers.header_table(root, byo, on_error=on_error, errors=[])
    if byo.participants_csv:
        csv_table = readers.read_participants_csv(root / byo.participants_csv, byo.id_column)
        table = {p: {**table.get(p, {}), **labels} for p, labels in csv_table.items()}

    def recordings(wanted, errors):
        it = readers.scan_folder(root, byo, on_error=on_error, errors=errors, only=wanted)
        return (rec for rec in it if rec.participant in wanted)

    if not table:  # unlabelled cohort: participants are whoever the files name
        table = {rec.participant: {} for rec in recordings(_Everyone(), [])}
    return recording_source(
        name,
        f"Bring-your-own cohort from {root} ({spec_file}).",
        table,
        recordings,
        spec,
        quality,
        hop_seconds=hop_seconds,
        max_pad_fraction=max_pad_fraction,
        on_error=on_error,
    )


class _Everyone:
    def __contains__(self, item):
        return True
