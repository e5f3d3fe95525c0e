"""Bring-your-own cohorts: a folder of recordings described by a `ByoSpec`, read lazily."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

from ahms_fm.data.readers.arrays import ORIENTATIONS
from ahms_fm.data.readers.common import as_data_error, attempt, check_policy
from ahms_fm.data.readers.files import read_file
from ahms_fm.data.readers.tables import parse_column, read_participants_csv
from ahms_fm.data.recording import DataError, Recording


@dataclasses.dataclass(frozen=True)
class ByoSpec:
    """How to read a bring-your-own cohort folder (`scan_folder`); JSON-loadable.

    pattern: glob relative to the cohort root picking one recording per match: files
      (`read_file` formats) or E4 export folders, e.g. "**/*.csv", "*/*.edf", "S*".
    participant_regex: regex searched in the match's path relative to the root (with "/"
      separators) with a named group `participant`, e.g. r"sub-(?P<participant>\\d+)/" or,
      for a flat folder of records, r"(?P<participant>[^/]+)\\.hea$". None: the parent
      folder's name (for an E4 export folder, its own name).
    sample_rate: Hz, for files that carry none (NumPy, MATLAB, CSV without a time column);
      where a file states its rate the two must agree.
    channels: the channels to read, by name (CSV/Parquet columns, WFDB/EDF signal names,
      `channel_names`) or by index (0 = the first signal column); None: all.
    channel_names: names for an array file's columns (NumPy, MATLAB), so `channels` can
      pick them by name.
    key: the array's name in a .npz or .mat file (None: its only numeric array, or one
      named signal/val/data).
    orientation: an array file's layout: "auto" (time along the longer axis),
      "time_first" ([time, channels]) or "channels_first" ([channels, time]).
    rate_key: the name of a scalar holding the rate in .npz/.mat files (None: any of
      sample_rate/fs/Fs/sampling_rate/srate, if present).
    participants_csv: the label table, relative to the root (`read_participants_csv`); files
      whose participant is not in it are reported. None: no table.
    id_column: the table's participant id column.
    header_labels: take labels from WFDB headers' comment lines ("# Age: 78" -> age 78,
      "# Sex: Male" -> sex "Male"; keys lowercased), typed like a table's columns
      (`header_table`); with a participants_csv too, the table's columns win.
    The recording id is the match's relative path without its extension.
    """

    pattern: str = "**/*.csv"
    participant_regex: str | None = None
    sample_rate: float | None = None
    channels: tuple[str | int, ...] | None = None
    channel_names: tuple[str, ...] | None = None
    key: str | None = None
    orientation: str = "auto"
    rate_key: str | None = None
    participants_csv: str | None = "participants.csv"
    id_column: str = "participant"
    header_labels: bool = False

    def __post_init__(self):
        if not self.pattern or not isinstance(self.pattern, str):
            raise ValueError("ByoSpec.pattern must be a non-empty glob")
        if self.participant_regex is not None:
            if "participant" not in re.compile(self.participant_regex).groupindex:
                raise ValueError(
                    f"participant_regex {self.participant_regex!r} needs a named "
                    "group (?P<participant>...)"
                )
        if self.sample_rate is not None and not (
            math.isfinite(self.sample_rate) and self.sample_rate > 0
        ):
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate!r}")
        if self.channels is not None:
            chans = (self.channels,) if isinstance(self.channels, (str, int)) else self.channels
            object.__setattr__(
                self,
                "channels",
                tuple(
                    c if isinstance(c, int) and not isinstance(c, bool) else str(c) for c in chans
                ),
            )
        if self.channel_names is not None:
            object.__setattr__(self, "channel_names", tuple(str(c) for c in self.channel_names))
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {self.orientation!r}")

    def read_options(self) -> dict:
        """`read_file`'s keyword arguments for array files (empty where all are defaults,
        so other formats never see them)."""
        options = {
            "key": self.key,
            "orientation": self.orientation,
            "channel_names": self.channel_names,
            "rate_key": self.rate_key,
        }
        return {k: v for k, v in options.items() if v not in (None, "auto")}

    @classmethod
    def from_dict(cls, d: dict) -> ByoSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ByoSpec keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path) -> ByoSpec:
        with as_data_error(path, "cannot read the cohort spec"):
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(d, dict):
                raise DataError(path, "the cohort spec must be a JSON object")
            return cls.from_dict(d)


def _participant_of(path: Path, root: Path, spec: ByoSpec) -> str:
    rel = path.relative_to(root).as_posix()
    if spec.participant_regex is not None:
        m = re.search(spec.participant_regex, rel)
        if m is None or not m["participant"]:
            raise DataError(
                path, f"participant_regex {spec.participant_regex!r} does not match {rel!r}"
            )
        return m["participant"]
    if path.is_dir():
        return path.name
    if path.parent == root:
        raise DataError(
            path,
            "file sits in the cohort root, so it has no participant folder; set participant_regex",
        )
    return path.parent.name


def _raise(path, problem: str):
    raise DataError(path, problem)


def _one_file_per_recording(paths: list[Path], root: Path) -> list[Path]:
    """The files to read, one per recording: a WFDB record is its `.hea` (the header names
    its signal files, which `*` patterns also match); two files with one recording id
    (`rec.csv` beside `rec.npy`) or one file reached twice (links) are refused."""
    by_id: dict[str, list[Path]] = {}
    for p in paths:
        by_id.setdefault(p.relative_to(root).with_suffix("").as_posix(), []).append(p)
    out, seen = [], {}
    for rec_id, group in by_id.items():
        headers = [p for p in group if p.suffix.lower() == ".hea"]
        group = headers or group
        if len(group) > 1:
            raise DataError(
                root,
                f"recording {rec_id!r} is given by {len(group)} files ("
                f"{', '.join(p.name for p in group)}): keep one, or narrow the "
                "spec's pattern",
            )
        real = group[0].resolve()
        if real in seen:
            raise DataError(
                group[0],
                f"is the same file as {seen[real]} (a link): one recording would be read twice",
            )
        seen[real] = group[0]
        out.append(group[0])
    return out


def _listing(root: Path, spec: ByoSpec, on_error: str, errors: list | None) -> list[Path]:
    """The files (or E4 folders) the spec's pattern matches, one per recording; links to
    nothing are reported by the error policy; the participants table is never one."""
    if not root.is_dir():
        raise DataError(root, "cohort root is not a folder")
    table_path = root / spec.participants_csv if spec.participants_csv is not None else None
    matched = sorted(root.glob(spec.pattern))
    for link in (p for p in matched if p.is_symlink() and not p.exists()):
        attempt(
            lambda p=link: _raise(p, "a symbolic link to nothing (or to itself)"), on_error, errors
        )
    paths = _one_file_per_recording(
        [
            p
            for p in matched
            if (p.is_file() or (p / "BVP.csv").is_file())
            and (table_path is None or p.resolve() != table_path.resolve())
        ],
        root,
    )
    if not paths:
        raise DataError(root, f"no recordings match {spec.pattern!r}")
    return paths


def _header_comments(hea: Path) -> dict[str, str]:
    """`{key: value}` of a WFDB header's `# Key: value` comment lines (keys lowercased:
    "# Age: 78" -> age)."""
    out = {}
    with as_data_error(hea):
        for line in hea.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if text.startswith("#") and ":" in text:
                k, v = text[1:].split(":", 1)
                if k.strip():
                    out[k.strip().lower()] = v.strip()
    return out


def header_table(
    root, spec: ByoSpec | dict, on_error: str = "raise", errors: list | None = None
) -> dict[str, dict]:
    """`{participant: {label: value}}` from the WFDB headers' comment lines of the cohort's
    records (other files give no labels). Each label is typed over all participants like a
    table column (numbers, yes/no, strings; "Unknown" and the like are missing). Two records
    of one participant that disagree on a label are a DataError naming both."""
    check_policy(on_error, errors)
    spec = spec if isinstance(spec, ByoSpec) else ByoSpec.from_dict(spec)
    root = Path(root)
    raw: dict[str, dict[str, str]] = {}
    where: dict[str, Path] = {}
    for path in _listing(root, spec, on_error, errors):
        hea = path.with_suffix(".hea")
        if not hea.is_file():
            continue
        pid = attempt(lambda p=path: _participant_of(p, root, spec), on_error, errors)
        comments = attempt(lambda h=hea: _header_comments(h), on_error, errors)
        if pid is None or comments is None:
            continue
        mine = raw.setdefault(pid, {})
        for k, v in comments.items():
            if k in mine and mine[k] != v:
                raise DataError(
                    hea,
                    f"label {k!r} is {v!r} here but {mine[k]!r} in "
                    f"{where[pid].name} (same participant {pid!r})",
                )
            mine[k] = v
        where.setdefault(pid, hea)
    keys = sorted({k for labels in raw.values() for k in labels})
    ids = sorted(raw)
    columns = {k: parse_column([raw[p].get(k, "") for p in ids]) for k in keys}
    return {p: {k: columns[k][i] for k in keys} for i, p in enumerate(ids)}


def scan_folder(
    root, spec: ByoSpec | dict, on_error: str = "raise", errors: list | None = None, only=None
) -> Iterator[Recording]:
    """Lazily read every recording of a bring-your-own cohort described by `spec`.

    The root, the spec, the participants table and the file listing are checked now (and
    raise); each file is read when iterated, its problems handled by on_error/errors, like a
    participant missing from the table. With `only` (a set of participant ids), files of
    other participants are passed over without being read.
    """
    check_policy(on_error, errors)
    spec = spec if isinstance(spec, ByoSpec) else ByoSpec.from_dict(spec)
    root = Path(root)
    table_path, known = None, None
    if spec.participants_csv is not None and root.is_dir():
        table_path = root / spec.participants_csv
        if not table_path.is_file():
            raise DataError(
                table_path,
                "participants table named in the spec is missing (set "
                "participants_csv to None for an unlabelled cohort)",
            )
        known = read_participants_csv(table_path, spec.id_column)
    paths = _listing(root, spec, on_error, errors)
    options = spec.read_options()

    def read(path: Path) -> Recording:
        pid = _participant_of(path, root, spec)
        if known is not None and pid not in known:
            raise DataError(path, f"participant {pid!r} is not in {table_path.name}")
        rec_id = path.relative_to(root).with_suffix("").as_posix()
        return read_file(path, spec.sample_rate, spec.channels, pid, rec_id, **options)

    def wanted(path: Path) -> bool:
        if only is None:
            return True
        pid = attempt(lambda: _participant_of(path, root, spec), on_error, errors)
        return pid is not None and (pid in only or (known is not None and pid not in known))

    def recordings():
        for path in filter(wanted, paths):
            rec = attempt(lambda p=path: read(p), on_error, errors)
            if rec is not None:
                yield rec

    return recordings()
