"""The public datasets in their original layouts: Stress-Predict (Empatica E4), PPG-BP,
PhysioNet/CinC 2017. Each reader is lazy and returns (recordings, participant labels); the
quirks of each download are handled here and documented where they are handled.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ahms_fm.data.readers.common import (
    MISSING,
    as_data_error,
    attempt,
    check_finite,
    check_policy,
    is_number,
)
from ahms_fm.data.readers.e4 import read_e4_extras, read_e4_session
from ahms_fm.data.readers.physionet import read_wfdb
from ahms_fm.data.recording import DataError, Recording

# Stress-Predict phases that are stress tasks (the rest are rest/baseline/admin).
STRESS_PHASES = ("stroop_test", "interview", "hyperventilation")

# ---------------------------------------------------------------------------------------------
# Public datasets
# ---------------------------------------------------------------------------------------------


def _xlsx_rows(path: Path) -> list[list]:
    """Cell values of the first sheet of a workbook, row by row."""
    import openpyxl

    with as_data_error(path):
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            return [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
        finally:
            wb.close()


def _stress_time_logs(path: Path) -> dict[str, dict]:
    """Processed_data/Time_logs.xlsx -> {participant: {"phases": [...], "session_date": ...}}.

    Quirks: two header rows (phase names over Start/End pairs); clock times on a 12-hour
    clock without AM/PM (sessions ran 09:00-16:30, so hours before 08 are afternoon: +12);
    local Irish time, converted to UTC with Europe/Dublin (GMT for all these Feb-Mar 2022
    sessions; the E4 button tags fall within ~0-4 min of the logged times); "Questionniare"
    misspelt.
    S01's row lists its baseline after its Stroop test, as its tags confirm: phases are
    sorted by start time.
    """
    rows = _xlsx_rows(path)
    if len(rows) < 3:
        raise DataError(path, "expected two header rows and one row per participant")
    top, sub = rows[0], rows[1]
    date_col = next((j for j, v in enumerate(top) if str(v).strip().lower() == "date"), None)
    phase_cols = [
        (j, _phase_name(top[j]))
        for j in range(len(sub) - 1)
        if str(sub[j]).strip() == "Start" and str(sub[j + 1]).strip() == "End"
    ]
    if date_col is None or not phase_cols:
        raise DataError(path, "header rows lack a 'Date' column or Start/End phase columns")
    dublin = zoneinfo.ZoneInfo("Europe/Dublin")
    logs = {}
    for i, row in enumerate(rows[2:], start=3):
        pid = str(row[0]).strip() if row[0] is not None else ""
        if not pid:
            continue
        day = row[date_col]
        if not isinstance(day, dt.datetime | dt.date):
            raise DataError(path, f"row {i} ({pid}): no session date")
        day = day.date() if isinstance(day, dt.datetime) else day

        def unix(value, what, pid=pid, day=day, i=i):
            if isinstance(value, dt.datetime):
                value = value.time()
            if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", value.strip()):
                value = dt.time(*map(int, value.strip().split(":")))
            if not isinstance(value, dt.time):
                raise DataError(path, f"row {i} ({pid}): {what} is {value!r}, not a time")
            hour = value.hour + 12 if value.hour < 8 else value.hour  # 12-hour clock
            local = dt.datetime.combine(day, value.replace(hour=hour), tzinfo=dublin)
            return local.timestamp()

        phases = []
        for j, name in phase_cols:
            start, end = unix(row[j], f"{name} start"), unix(row[j + 1], f"{name} end")
            if end < start:
                raise DataError(path, f"row {i} ({pid}): phase {name} ends before it starts")
            phases.append((name, start, end))
        if pid in logs:
            raise DataError(path, f"row {i}: duplicate participant {pid!r}")
        logs[pid] = {"phases": sorted(phases, key=lambda p: p[1]), "session_date": day.isoformat()}
    return logs


def _phase_name(header) -> str:
    name = str(header).strip().lower().replace("questionniare", "questionnaire")
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_")


def read_stress_predict(
    root, on_error: str = "raise", errors: list | None = None
) -> tuple[Iterator[Recording], dict[str, dict]]:
    """Stress-Predict (Iqbal et al. 2022): 35 Empatica E4 sessions (`Raw_data/SXX/`).

    Returns (lazy iterator of Recordings, one per participant as `read_e4_session` gives,
    labels). labels[participant] = {
      "phases": [(name, start, end), ...] unix s, sorted: the task schedule from
        `Processed_data/Time_logs.xlsx` (minute resolution; names consent,
        baseline_questionnaire, stroop_test, relax, interview, hyperventilation,
        questionnaire, relax_baseline; the stress tasks are `STRESS_PHASES`),
      "session_date": "YYYY-MM-DD",
      "tags": E4 button presses (unix s, sorted) marking task boundaries to the second,
      "tags_raw": the same as stored,
      "mean_hr": mean of the device heart rate (HR.csv, bpm), NaN without HR.csv }.
    Quirk: some tag files hold times typed on a 12-hour clock, 12 h before the session
    (S17, S18, S30): tags that fall outside the logged session but inside it when moved
    12 h later are moved; a tag outside the session either way is an error.
    """
    check_policy(on_error, errors)
    root = Path(root)
    raw = root / "Raw_data"
    if not raw.is_dir():
        raise DataError(raw, "missing folder (expected Raw_data/SXX/ E4 exports)")
    folders = sorted(p for p in raw.iterdir() if p.is_dir())
    if not folders:
        raise DataError(raw, "no participant folders")
    logs = _stress_time_logs(root / "Processed_data" / "Time_logs.xlsx")
    labels = {}
    for folder in folders:
        entry = attempt(lambda f=folder: _stress_labels(f, logs.get(f.name)), on_error, errors)
        if entry is not None:
            labels[folder.name] = entry

    def recordings():
        for folder in folders:
            if folder.name in labels:
                rec = attempt(lambda f=folder: read_e4_session(f), on_error, errors)
                if rec is not None:
                    yield rec

    return recordings(), labels


def _stress_labels(folder: Path, log: dict | None) -> dict:
    if log is None:
        raise DataError(folder, f"participant {folder.name} is not in Time_logs.xlsx")
    extras = read_e4_extras(folder)
    first, last = log["phases"][0][1] - 3600, log["phases"][-1][2] + 3600
    tags = []
    for t in extras["tags"]:
        if not first <= t <= last and first <= t + 43200 <= last:
            t += 43200  # typed on a 12-hour clock
        if not first <= t <= last:
            raise DataError(folder, f"tag {t:.0f} lies outside the logged session")
        tags.append(t)
    hr = extras["hr"]
    return {
        "phases": log["phases"],
        "session_date": log["session_date"],
        "tags": sorted(tags),
        "tags_raw": extras["tags"],
        "mean_hr": float(np.mean(hr)) if hr is not None else math.nan,
    }


_PPG_BP_COLUMNS = {  # header prefix (lower case) -> label name
    "subject_id": "id",
    "sex": "sex",
    "age": "age",
    "height": "height",
    "weight": "weight",
    "systolic": "sbp",
    "diastolic": "dbp",
    "heart rate": "heart_rate",
    "bmi": "bmi",
    "hypertension": "hypertension_stage",
    "diabetes": "diabetes",
    "cerebral infarction": "cerebral_infarction",
    "cerebrovascular": "cerebrovascular_disease",
}
PPG_BP_SAMPLES = 2100  # 2.1 s at 1 kHz


def _ppg_bp_table(path: Path) -> dict[str, dict]:
    rows = _xlsx_rows(path)
    # Quirk: row 1 is a title; the header is the first row naming subject_ID (row 2).
    head = next((i for i, r in enumerate(rows[:5]) if "subject_ID" in map(str, r)), None)
    if head is None:
        raise DataError(path, "no header row with a 'subject_ID' column in the first 5 rows")
    cols = {}
    for j, h in enumerate(rows[head]):
        key = next((k for k in _PPG_BP_COLUMNS if str(h).strip().lower().startswith(k)), None)
        if key is not None:
            cols.setdefault(_PPG_BP_COLUMNS[key], j)
    missing = sorted(set(_PPG_BP_COLUMNS.values()) - set(cols))
    if missing:
        raise DataError(path, f"header lacks columns for {missing}")
    table = {}
    for i, row in enumerate(rows[head + 1 :], start=head + 2):
        if all(v is None for v in row):
            continue
        cell = {name: row[j] for name, j in cols.items()}

        def number(name, cell=cell, i=i):
            v = cell[name]
            if v is None or (isinstance(v, str) and v.strip().lower() in MISSING):
                return math.nan
            if isinstance(v, bool) or not (isinstance(v, int | float) or is_number(str(v))):
                raise DataError(path, f"row {i}: {name} {v!r} is not a number")
            return float(v)

        sid = number("id")
        if not (math.isfinite(sid) and sid == int(sid)):
            raise DataError(path, f"row {i}: bad subject_ID {cell['id']!r}")
        sid = str(int(sid))
        sex = str(cell["sex"]).strip().lower()
        if sex not in ("female", "f", "male", "m"):
            raise DataError(
                path, f"row {i} (subject {sid}): sex {cell['sex']!r} is not Female/Male"
            )
        stage = str(cell["hypertension_stage"] or "").strip()
        if not stage:
            raise DataError(path, f"row {i} (subject {sid}): no hypertension stage")
        labels = {"sex": 1 if sex.startswith("m") else 0}
        for name in ("age", "height", "weight", "bmi", "sbp", "dbp", "heart_rate"):
            labels[name] = number(name)
        labels["hypertension"] = stage.lower() != "normal"
        labels["hypertension_stage"] = stage
        for name in ("diabetes", "cerebral_infarction", "cerebrovascular_disease"):
            raw = str(cell[name]).strip() if cell[name] is not None else ""
            labels[name] = raw.lower() not in MISSING  # blank or "None": not diagnosed
            labels[f"{name}_raw"] = raw
        if sid in table:
            raise DataError(path, f"row {i}: duplicate subject_ID {sid}")
        table[sid] = labels
    if not table:
        raise DataError(path, "no subject rows")
    return table


def _read_ppg_bp_txt(path: Path, participant: str) -> Recording:
    text = path.read_text(encoding="utf-8")
    # One line of tab-separated values with a trailing tab and no header: a CSV reader would
    # see one 2,101-column row with an empty last field, so split it here instead.
    tokens = text.rstrip("\t\r\n ").split("\t")
    if tokens == [""]:
        raise DataError(path, "empty file")
    try:
        values = np.asarray(tokens, dtype=np.float64)
    except ValueError:
        i = next(k for k, t in enumerate(tokens) if not is_number(t))
        raise DataError(path, f"value {i}: cannot parse {tokens[i]!r} as a number") from None
    check_finite(path, values, lambda r: f"value {r}")
    # Quirk: 231_1 and 231_2 hold 4,200 samples (4.2 s); they are kept whole.
    if len(values) not in (PPG_BP_SAMPLES, 2 * PPG_BP_SAMPLES):
        raise DataError(
            path, f"{len(values)} samples, expected {PPG_BP_SAMPLES} (2.1 s at 1 kHz): truncated?"
        )
    return Recording(participant, path.stem, values, 1000.0, str(path), ("ppg",))


def read_ppg_bp(
    root, on_error: str = "raise", errors: list | None = None
) -> tuple[Iterator[Recording], dict[str, dict]]:
    """PPG-BP (Liang et al. 2018): finger PPG, raw ADC at 1 kHz, 3 x 2.1 s per subject.

    Returns (lazy iterator of Recordings, one per `0_subject/<id>_<n>.txt`, participant =
    subject id as a string, recording = file stem, channel "ppg", no start time; table).
    table[subject id] = {"sex": 0 female / 1 male, "age", "height" (cm), "weight" (kg),
    "bmi", "sbp", "dbp" (mmHg), "heart_rate" (floats; NaN if blank), "hypertension": bool
    (any stage but Normal, so Prehypertension counts), "hypertension_stage": the raw stage,
    "diabetes", "cerebral_infarction", "cerebrovascular_disease": bool (blank or "None" = no;
    the latter includes "insufficiency of cerebral blood supply"), each with its raw text in
    "<name>_raw"}. Files not named `<id>_<n>.txt`, subjects missing from the spreadsheet and
    subjects without files are reported as errors under the on_error policy.
    """
    check_policy(on_error, errors)
    root = Path(root)
    folder = root / "0_subject"
    if not folder.is_dir():
        raise DataError(folder, "missing folder")
    table = _ppg_bp_table(root / "PPG-BP dataset.xlsx")
    files, seen = [], set()
    for path in sorted(folder.iterdir()):
        m = re.fullmatch(r"(\d+)_(\d+)\.txt", path.name)
        if m is None:
            attempt(lambda p=path: _raise(p, "not named <subject>_<n>.txt"), on_error, errors)
        elif m[1] not in table:
            attempt(
                lambda p=path, s=m[1]: _raise(p, f"subject {s} is not in the spreadsheet"),
                on_error,
                errors,
            )
        else:
            files.append((int(m[1]), int(m[2]), path))
            seen.add(m[1])
    for sid in sorted(set(table) - seen, key=int):
        attempt(lambda s=sid: _raise(folder, f"subject {s} has no recordings"), on_error, errors)

    def recordings():
        for sid, _, path in sorted(files):
            rec = attempt(lambda p=path, s=sid: _read_ppg_bp_txt(p, str(s)), on_error, errors)
            if rec is not None:
                yield rec

    return recordings(), table


def _raise(path, problem):
    raise DataError(path, problem)


CINC_RHYTHMS = {"N": "normal", "A": "atrial fibrillation", "O": "other rhythm", "~": "noisy"}


def read_cinc2017(
    root, on_error: str = "raise", errors: list | None = None
) -> tuple[Iterator[Recording], dict[str, dict]]:
    """PhysioNet/CinC 2017: single-lead AliveCor ECG, WFDB + MATLAB v4, 300 Hz, in mV.

    Returns (lazy iterator of Recordings, one per record, participant = recording = record
    name, channel "ecg"; table). table[record] = {"rhythm": "N" | "A" | "O" | "~", "af": bool}
    from REFERENCE.csv. One record is treated as one participant (records are not guaranteed
    to be distinct people). Quirk: headers give 'YYYY-MM-DD HH:MM:SS' where WFDB expects
    'HH:MM:SS DD/MM/YYYY', which wfdb rejects; see `read_wfdb`. Records without a label and
    labels without a record are reported as errors under the on_error policy.
    """
    import pandas as pd

    check_policy(on_error, errors)
    root = Path(root)
    ref = root / "REFERENCE.csv"
    with as_data_error(ref):
        if not ref.is_file():
            raise DataError(ref, "missing file")
        df = pd.read_csv(ref, header=None, dtype=str, keep_default_na=False)
    if df.shape[1] != 2:
        raise DataError(ref, f"{df.shape[1]} columns, expected 2 (record, label)")
    table = {}
    for i, (rec, label) in enumerate(zip(df[0].str.strip(), df[1].str.strip(), strict=True)):
        if not re.fullmatch(r"[A-Za-z0-9_]+", rec) or label not in CINC_RHYTHMS:
            raise DataError(
                ref,
                f"line {i + 1}: bad record {rec!r} or label {label!r} "
                f"(labels are {sorted(CINC_RHYTHMS)})",
            )
        if rec in table:
            raise DataError(ref, f"line {i + 1}: duplicate record {rec}")
        table[rec] = {"rhythm": label, "af": label == "A"}
    on_disk = {p.stem: p for p in root.glob("*.hea")}
    for rec in sorted(set(on_disk) - set(table)):
        attempt(
            lambda r=rec: _raise(on_disk[r], "record has no label in REFERENCE.csv"),
            on_error,
            errors,
        )
    for rec in sorted(set(table) - set(on_disk)):
        attempt(
            lambda r=rec: _raise(root / f"{r}.hea", "labelled in REFERENCE.csv but missing"),
            on_error,
            errors,
        )

    def read(hea: Path) -> Recording:
        with as_data_error(hea):
            signal, rate, names, start = read_wfdb(hea)
        if rate != 300 or signal.shape[1] != 1:
            raise DataError(hea, f"expected one ECG channel at 300 Hz, got {names} at {rate:g} Hz")
        return Recording(hea.stem, hea.stem, signal, rate, str(hea), ("ecg",), start)

    def recordings():
        for rec in sorted(set(table) & set(on_disk)):
            out = attempt(lambda r=rec: read(on_disk[r]), on_error, errors)
            if out is not None:
                yield out

    return recordings(), table
