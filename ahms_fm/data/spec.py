"""What a model expects at its input (`ModalitySpec`: modality, rate, window, channels,
band; stored with every dataset and checkpoint) and what a window must pass to be kept
(`QualitySpec`: the rejection thresholds, with `REASONS` the names of the checks; not to
be confused with a segment's `quality`, its periodicity score in [0, 1])."""

from __future__ import annotations

import dataclasses
import math

from ahms_fm.data.recording import DataError

REASONS = ("too_short", "nonfinite", "flat", "clipped", "motion", "heart_rate")


@dataclasses.dataclass(frozen=True)
class ModalitySpec:
    """What a model expects at its input; stored with every dataset and checkpoint."""

    modality: str
    sample_rate: float
    window_seconds: float
    channels: int
    band_hz: tuple[float, float]
    normalization: str = "zscore"
    filter_order: int = 4

    @property
    def segment_length(self) -> int:
        """Samples per window, rounded half up (as the config's `input.segment_length`)."""
        return math.floor(self.sample_rate * self.window_seconds + 0.5)

    @classmethod
    def from_config(cls, config) -> ModalitySpec:
        return cls(
            modality=config.modality,
            sample_rate=float(config.input.sample_rate),
            window_seconds=float(config.input.window_seconds),
            channels=int(config.input.channels),
            band_hz=tuple(float(b) for b in config.input.band_hz),
            normalization=config.input.normalization,
            filter_order=int(config.preprocess.filter_order),
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["band_hz"] = list(self.band_hz)
        d["segment_length"] = self.segment_length
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModalitySpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in fields}
        kwargs["band_hz"] = tuple(kwargs["band_hz"])
        return cls(**kwargs)

    def check_matches(self, other: ModalitySpec, where: str) -> None:
        """Raise, naming every field that differs, if `other` is not this spec."""
        diffs = [
            f"{f.name}: expected {getattr(self, f.name)!r}, got {getattr(other, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]
        if diffs:
            raise DataError(where, "modality spec does not match: " + "; ".join(diffs))


@dataclasses.dataclass(frozen=True)
class QualitySpec:
    """Thresholds of the quality checks (see the module docstring)."""

    flat_seconds: float = 1.0
    max_flat_fraction: float = 0.1
    max_clipped_fraction: float = 0.05
    heart_rate_bpm: tuple[float, float] = (30.0, 220.0)
    max_motion_g: float = 0.2

    @classmethod
    def from_config(cls, config) -> QualitySpec:
        q = config.quality
        return cls(
            flat_seconds=float(q.flat_seconds),
            max_flat_fraction=float(q.max_flat_fraction),
            max_clipped_fraction=float(q.max_clipped_fraction),
            heart_rate_bpm=tuple(float(b) for b in q.heart_rate_bpm),
            max_motion_g=float(q.max_motion_g),
        )
