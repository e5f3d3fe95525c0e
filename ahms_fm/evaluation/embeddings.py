"""Embeddings from a pretrained encoder: of dataset splits and of raw signals.

    encoder = load_encoder("runs/ppg")        # (ahms_fm.evaluation.encoder)
    table = embed_split(encoder, dataset.load_split(path, "test"))
    write_embeddings(table, "test.parquet", metadata=encoder.describe())
    out = embed("runs/ppg", recording)        # ingestion's preprocessing, then the encoder

The encoder, checkpoint discovery and Parquet files live in `encoder`, `ahms_fm.checkpoint`
and `parquet`; their names are importable from here too.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from ahms_fm.checkpoint import find_checkpoint, list_checkpoints, read_info
from ahms_fm.data import dataset
from ahms_fm.data.preprocess import ModalitySpec, QualitySpec, segment_recording
from ahms_fm.data.recording import DataError, Recording
from ahms_fm.evaluation.encoder import (
    WHICH,
    Encoder,
    _describe_spec,
    _padded_batch,  # noqa: F401 (tests)
    calibrate_batch_norm,
    config_from_json,
    load_encoder,
    random_encoder,
)
from ahms_fm.evaluation.parquet import (
    METADATA_KEY,
    embedding_matrix,
    json_default,
    read_embeddings,
    write_embeddings,
)

__all__ = [  # noqa: RUF022 (by kind)
    "embed",
    "embed_split",
    "Embedded",
    "check_channels",
    "Encoder",
    "load_encoder",
    "random_encoder",
    "calibrate_batch_norm",
    "config_from_json",
    "WHICH",
    "find_checkpoint",
    "list_checkpoints",
    "read_info",
    "METADATA_KEY",
    "embedding_matrix",
    "json_default",
    "read_embeddings",
    "write_embeddings",
]


# ----------------------------------------------------------------------------
# Datasets.
# ----------------------------------------------------------------------------


COLUMNS = dataset.RECORD_FIELDS  # per-record fields of a split, and their types


class _RecordReader:
    """Records of a split, read once each (`dataset.parse_record`): the signals for the
    encoder and the scalar fields into `columns`."""

    def __init__(self, split):
        import grain

        self.source = grain.sources.ArrayRecordDataSource(split.files)
        self.shape = (split.spec.segment_length, split.spec.channels)
        self.dtype = np.dtype(split.storage_dtype)
        n = len(split)
        self.columns = {k: np.empty(n, object if t is str else t) for k, t in COLUMNS.items()}
        self.done = np.zeros(n, bool)

    def read(self, lo: int, hi: int, signals: bool = True) -> np.ndarray | None:
        """Signals of records lo..hi-1 (if asked); their fields go into `columns`."""
        out = np.empty((hi - lo, *self.shape), self.dtype) if signals else None
        for j in range(hi - lo):  # one by one: the batched read's threads cost more here
            x, values = dataset.parse_record(
                self.source[lo + j], self.shape, self.dtype, fields=COLUMNS, signal=signals
            )
            if signals:
                out[j] = x
            for k, v in values.items():
                self.columns[k][lo + j] = v
        self.done[lo:hi] = True
        return out

    def finish(self, chunk: int = 1024) -> dict:
        """Every column; records another process embedded are read here (fields only)."""
        for start in range(0, len(self.done), chunk):
            stop = min(start + chunk, len(self.done))
            if not self.done[start:stop].all():
                self.read(start, stop, signals=False)
        return self.columns


def embed_split(encoder: Encoder, split, *, batch_size: int = 256, progress: bool = True):
    """Every record of a dataset split, embedded: a pandas DataFrame in record order.

    Columns: participant, participant_index, split, recording, segment, offset_s,
    label, heart_rate, quality, and embedding (one float32 [d] array per row;
    `embedding_matrix(table)` stacks them).
    """
    import pandas as pd

    encoder.spec.check_matches(split.spec, f"{split.path} [{split.name}]")
    reader = _RecordReader(split)
    z = encoder._embed(
        len(split), reader.read, reader.dtype, batch_size, progress, desc=f"embed {split.name}"
    )
    columns = reader.finish()
    table = pd.DataFrame({k: columns[k] for k in ("participant", "participant_index")})
    table["split"] = split.name
    for k in COLUMNS:
        table[k] = columns[k]
    table = table.astype(
        {k: "str" if t is str else t for k, t in COLUMNS.items()} | {"split": "str"}
    )
    table["embedding"] = list(z)
    return table


# ----------------------------------------------------------------------------
# Raw signals: the Python API.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Embedded:
    """Windows of one or more signals, and the embeddings of the kept ones.

    Per window (every window of every signal, in order): `recording` (its
    signal's index in the input), `segment`, `offset_s`, `heart_rate`,
    `quality`, `reason` ("" = kept) and `kept`; `embeddings[i]` belongs to
    the i-th kept window.
    """

    embeddings: np.ndarray  # [n_kept, d] float32
    recording: np.ndarray  # [n_windows] int64: index of the input signal
    segment: np.ndarray  # [n_windows] int64: the window's number in its signal
    offset_s: np.ndarray  # [n_windows] window start, seconds from the signal's start
    heart_rate: np.ndarray  # [n_windows] estimated bpm (NaN: none found)
    quality: np.ndarray  # [n_windows] periodicity in [0, 1]
    reason: np.ndarray  # [n_windows] str: "" kept, else the first quality check failed
    kept: np.ndarray  # [n_windows] bool
    names: list[str]  # per input signal: its recording name
    too_short: np.ndarray  # per input signal: shorter than one window (no windows)
    encoder: str  # what embedded them ("<checkpoint> (teacher, step N)")


def _as_recordings(signals, sample_rate) -> list[Recording]:
    """A Recording, a raw array [time, channels] or [time] (a list of numbers is one), or
    a list of them."""
    if (
        isinstance(signals, (list, tuple))
        and signals
        and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in signals)
    ):
        signals = np.asarray(signals, np.float64)  # one recording, not one per number
    one = isinstance(signals, Recording) or (isinstance(signals, np.ndarray) and signals.ndim <= 2)
    items = [signals] if one else list(signals)
    out = []
    for i, s in enumerate(items):
        name = "signals" if one else f"signals[{i}]"
        if isinstance(s, Recording):
            if sample_rate is not None and sample_rate != s.sample_rate:
                raise ValueError(
                    f"{name} ({s.source}) is a Recording at "
                    f"{s.sample_rate:g} Hz; sample_rate={sample_rate} is for "
                    "raw arrays only"
                )
            out.append(s)
            continue
        try:
            x = np.asarray(s)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name} is not an array of numbers ({e})") from None
        if x.dtype.kind not in "biuf":
            raise ValueError(
                f"{name} has dtype {x.dtype}: give real numbers (a [time, "
                "channels] float array), not text or objects"
            )
        if x.ndim > 2:
            raise ValueError(
                f"{name} has shape {x.shape}: give a [time, channels] "
                "array per recording (a list for several)"
            )
        if sample_rate is None:
            raise ValueError("sample_rate (Hz) is required with raw arrays")
        out.append(
            Recording(
                participant="",
                recording=name,
                signal=x,
                sample_rate=float(sample_rate),
                source=name,
            )
        )
    return out


PLAUSIBLE_BPM = (35.0, 200.0)  # a median heart rate outside (at rest): the rate is suspect
RESTING_BPM = (40.0, 150.0)  # a sampling rate suggested instead must give one in here
COMMON_RATES = (25, 32, 50, 64, 100, 125, 128, 200, 250, 256, 300, 360, 400, 500, 512, 1000)


def check_channels(rec: Recording, spec: ModalitySpec, encoder) -> None:
    """A DataError for a channel count the encoder cannot take, with a transpose hint for
    what looks like [channels, time]."""
    shape = np.shape(rec.signal)
    channels = shape[1] if len(shape) == 2 else 1
    if channels == spec.channels:
        return
    hint = ""
    if len(shape) == 2 and shape[0] == spec.channels and shape[1] > shape[0]:
        hint = f"; it looks like [channels, time] {shape}: pass its transpose (x.T)"
    raise DataError(
        rec.source,
        f"{channels} channel(s), but the checkpoint "
        f"{encoder.source} expects {_describe_spec(spec)}{hint}",
    )


def segments_for(encoder: Encoder, rec: Recording):
    """`rec`'s windows as the encoder's checkpoint preprocesses them: its modality spec,
    quality checks, hop and pad policy (older checkpoints have none: no padding); a
    DataError for a channel count it cannot take."""
    config = encoder.config
    check_channels(rec, encoder.spec, encoder)
    return segment_recording(
        rec,
        encoder.spec,
        QualitySpec.from_config(config),
        config.preprocess.hop_seconds,
        config.preprocess.get("max_pad_fraction", 0.0),
    )


def _warn_about(names, parts, rates, signals, spec: ModalitySpec) -> None:
    """Warnings for what the caller would want to know: nothing embedded (and why), and
    beats that come at an implausible rate for the declared sampling rate."""
    import warnings

    reasons = collections.Counter()
    for s in parts:
        reasons.update(s.rejected_counts())
    reasons.pop("too_short", None)  # said per recording below
    short = [n for n, s in zip(names, parts, strict=True) if s.too_short]
    if parts and not any(s.kept.any() for s in parts):
        why = [f"{n} windows rejected ({r})" for r, n in sorted(reasons.items())]
        if short:
            why.append(
                f"{len(short)} recording(s) shorter than one {spec.window_seconds:g} s "
                f"window ({', '.join(short[:5])}{', ...' if len(short) > 5 else ''}); "
                "the checkpoint's preprocess.max_pad_fraction decides whether short "
                "ones are padded"
            )
        warnings.warn("nothing was embedded: " + "; ".join(why), stacklevel=3)
    lo, hi = PLAUSIBLE_BPM
    suspects: dict[float, list] = {}  # declared rate -> (name, period) of implausible ones
    checked: dict[float, int] = {}
    for name, s, rate, signal in zip(names, parts, rates, signals, strict=True):
        if len(s.reason) == 0:
            continue
        checked[rate] = checked.get(rate, 0) + 1
        bpm = np.nanmedian(s.heart_rate) if np.isfinite(s.heart_rate).any() else np.nan
        rhythmic = np.nanmedian(s.quality) >= 0.5 if np.isfinite(s.quality).any() else False
        if np.isfinite(bpm) and lo <= bpm <= hi and rhythmic:
            continue  # (a weak rhythm's estimates are noise: plausible or not, look closer)
        period = _beat_period(signal, spec)
        if period is not None and not lo <= 60.0 * rate / period <= hi:
            suspects.setdefault(rate, []).append((name, period))
    for rate, found in suspects.items():
        # One odd recording among many (a pause, a tachycardia) is not a wrong rate: say so
        # when at least half of the recordings declared at this rate look that way.
        if len(found) < max(1, checked[rate] / 2):
            continue
        period = float(np.median([p for _, p in found]))
        likely = _nearest_resting(period)
        if likely is None:
            continue
        who = found[0][0] if len(found) == 1 else f"{len(found)} of {checked[rate]} recordings"
        warnings.warn(
            f"{who}: beats every {period:.0f} samples, {60.0 * rate / period:.0f} bpm at the "
            f"declared {rate:g} Hz: implausible; is the sampling rate right? At {likely} Hz "
            f"they would be {60.0 * likely / period:.0f} bpm",
            stacklevel=3,
        )


def _nearest_resting(period: float) -> int | None:
    """The common sampling rate at which beats `period` samples apart are nearest 70 bpm,
    within `RESTING_BPM` (None if none is)."""
    lo, hi = RESTING_BPM
    rates = [r for r in COMMON_RATES if lo <= 60.0 * r / period <= hi]
    return min(rates, key=lambda r: abs(np.log(60.0 * r / period / 70.0)), default=None)


def _beat_period(signal, spec: ModalitySpec, seconds: float = 30.0) -> float | None:
    """The recording's beat period in samples, whatever its declared rate: read as each
    common rate, the start (`seconds` of it) through the heart-rate estimator; the period
    of the most periodic reading (None where none reaches 0.5)."""
    from ahms_fm.data.preprocess import bandpass, estimate_heart_rate, resample

    x = np.asarray(signal, np.float64)
    x = x[:, :1] if x.ndim == 2 else x[:, None]
    best = (0.5, None)
    for r in COMMON_RATES:
        part = x[: int(seconds * r)]
        if len(part) < 2 * r or not np.isfinite(part).all():
            continue
        y = bandpass(
            resample(part, r, spec.sample_rate), spec.sample_rate, spec.band_hz, spec.filter_order
        )
        bpm, periodicity = estimate_heart_rate(y[None], spec.sample_rate, spec.modality)
        if np.isfinite(bpm[0]) and periodicity[0] >= best[0]:
            best = (float(periodicity[0]), 60.0 * r / float(bpm[0]))
    return best[1]


def embed(
    checkpoint,
    signals,
    *,
    sample_rate: float | None = None,
    which: str = "teacher",
    batch_size: int = 256,
) -> Embedded:
    """Embed recordings with a checkpoint's encoder (a path, or an `Encoder`).

    `signals`: a `Recording`, a raw `[time, channels]` array (with `sample_rate`),
    or a list of either. Each is preprocessed exactly as at ingestion, with the
    checkpoint's settings (resample, band-pass, window, quality checks,
    z-score); windows failing a quality check are reported, not embedded.
    Warns (UserWarning) when nothing was embedded, saying why, and when the
    beats of a recording (of at least half of those declared at one rate)
    come at a heart rate implausible for the declared sampling rate, naming
    the common rate at which they would be nearest 70 bpm.
    """
    encoder = (
        checkpoint if isinstance(checkpoint, Encoder) else load_encoder(checkpoint, which=which)
    )
    spec = encoder.spec
    recordings = _as_recordings(signals, sample_rate)
    parts = [segments_for(encoder, rec) for rec in recordings]
    _warn_about(
        [r.recording for r in recordings],
        parts,
        [r.sample_rate for r in recordings],
        [r.signal for r in recordings],
        spec,
    )
    counts = [len(s.reason) for s in parts]
    reason = _concat([s.reason for s in parts], "<U10")
    windows = _concat([s.signal[s.kept] for s in parts], np.float32, encoder.spec_shape)
    return Embedded(
        embeddings=encoder.embed_windows(windows, batch_size=batch_size),
        recording=np.repeat(np.arange(len(parts), dtype=np.int64), counts),
        segment=_concat([np.arange(c) for c in counts], np.int64),
        offset_s=_concat([s.offset_s for s in parts], np.float64),
        heart_rate=_concat([s.heart_rate for s in parts], np.float64),
        quality=_concat([s.quality for s in parts], np.float64),
        reason=reason,
        kept=reason == "",
        names=[r.recording for r in recordings],
        too_short=np.array([s.too_short for s in parts], bool),
        encoder=f"{encoder.source} ({encoder.which}, step {encoder.step})",
    )


def _concat(arrays: list, dtype, shape: tuple = ()) -> np.ndarray:
    """np.concatenate that also takes no arrays (no signals given)."""
    if not arrays:
        return np.zeros((0, *shape), dtype)
    return np.concatenate(arrays).astype(dtype, copy=False)
