"""A synthetic wearable cohort: participants, 4-channel wrist PPG and Lead-I ECG.

The project's embedded default dataset (demo, tests, benchmarks): NumPy only,
nothing read from disk. Every participant has labels (`PARTICIPANT_FIELDS`:
age, sex, height, BMI, hypertension, diabetes, atrial fibrillation) and
random morphology latents (`MORPHOLOGY_FIELDS`: pulse-wave timing and widths,
channel gains, offsets and delays, P/QRS/T amplitudes and widths, a personal
heart-rate offset, ...) that no label touches, so identity can be learned from
any segment and the labels only from what they do to the waveforms (below).

API
---
- `sample_participants(seed, n)`: the participant table, a dict of `[n]` (or
  `[n, MAX_PPG_CHANNELS]`) arrays. Row i is drawn from its own generator, so
  the first m rows of a table of n >= m rows are the table of m rows.
- `ppg_segments(seed, participants, index, segment, sample_rate=64.0,
  seconds=60.0, channels=4, return_info=False)`: raw wrist PPG `[n, time,
  channels]` float32 in arbitrary units, neither filtered nor normalized,
  blood-volume polarity (the systolic peak points up), a DC level of 150-300
  per channel. Channels see the same pulse through LED/photodiode pairs with
  their own gain, DC level, delay (0-15 ms), baseline-wander gain and noise.
- `ecg_segments(seed, participants, index, segment, sample_rate=128.0,
  seconds=30.0, return_info=False)`: raw Lead-I-like ECG `[n, time, 1]`
  float32 in mV.
- `segment_hour(segment)`: the hour of day of a segment number, (8 + 7 s) mod 24.
- `ground_truth(participants, modality)`: per participant, the physiology
  that modality's waveforms are made from (`TRUTH_FIELDS`: resting heart
  rate, RMSSD, AF irregularity; PPG reflected-wave delay and height, notch
  depth, crest time, pulse amplitude, systolic width; ECG PR, QRS amplitude
  and width, QTc, T amplitude), resting values computed by the same functions
  the generators call, without the per-segment nuisance. Not the labels:
  the features of the probes' ceiling (`ahms_fm.evaluation.ceiling`). The
  stiffness index is not among them: the pulse shows it only through dT =
  height / SI and the reflection and notch, and SI with dT would give height.

Row r of a call is participant `participants["participant"][index[r]]`'s
segment `segment[r]`. All its randomness comes from one generator keyed
(modality, seed, participant id, segment), so a (participant, segment) gives
the same array whatever else is in the call, in any order (bit for bit with
the same NumPy on the same machine). A table whose rows copy one participant
(same id) with one label changed gives paired segments that differ only
through that label. With `return_info=True` the signal functions also return
a dict of ground truth: "heart_rate" (bpm) and "rmssd" (ms) of the beats in
the window, "hour", "motion" (bool: an artefact was added) and "beats" (PPG:
pulse-foot times of the undelayed pulse; ECG: R-peak times; s, NaN-padded);
PPG also "pulse_amplitude" (a.u., after the segment's and the day's effects),
"crest_time" (s), "reflection_height" and "channel_gain" (channel 0's pulse
amplitude).

How a segment is made
---------------------
RR intervals (sinus: a rate with a drift, respiratory sinus arrhythmia, a
0.1 Hz wave and beat-to-beat noise; AF: independent lognormal intervals) give
beat times; every sample finds its beat by a running count of beat onsets;
each beat adds a per-row template (a sum of Gaussian waves tabulated at 4x the
output rate, looked up with linear interpolation) for the current and the
previous beat(s). PPG: forward (systolic) wave, reflected wave, runoff wave and
dicrotic notch, plus a diastolic decline that reaches zero at the next foot;
channels mix the pulse at neighbouring integer shifts (a fractional delay), the
respiratory and slow baseline waves and a DC level with one small matmul.
ECG: P, q, R, S and an asymmetric T wave. Then noise (logistic, unit-variance
scaled), baseline wander, AF f waves and motion artefacts.

Relations (label -> what it changes in the signals)
---------------------------------------------------
Magnitudes are this model's, chosen inside the ranges the sources report;
"rationale" marks a plausible rather than well-measured relation.

| label        | what it changes                 | dir  | magnitude in the model      | ref   |
|--------------|---------------------------------|------|-----------------------------|-------|
| sex: female  | resting heart rate              | up   | +4 bpm                      | 1     |
| sex: female  | QTc                             | up   | +15 ms                      | 2     |
| sex: male    | QRS amplitude; R-wave width     | up   | x1.15; +1.5 ms (sd)         | 3     |
| height       | reflected-wave delay dT = h/SI  | up   | 163 vs 176 cm: dT +8%       | 4, 5  |
| age          | resting heart rate              | down | -0.05 bpm / year            | 1     |
| age          | HRV: RMSSD (SDNN with it)       | down | x e^(-0.02 / y): 52 ms at   | 1, 6  |
|              |                                 |      | 20 y, 16 ms at 80 y         |       |
| age          | stiffness index SI (~ PWV)      | up   | +0.09 m/s per year          | 4, 7  |
| SI           | reflected wave: delay dT        | down | dT = height / SI: 0.26 s at | 4     |
|              |                                 |      | 25 y -> 0.16 s at 70 y      |       |
| SI           | reflected-wave height (augment- | up   | +0.03 per m/s               | 4, 8  |
|              | ation, reflection index)        |      |                             |       |
| SI           | dicrotic notch depth            | down | x e^(-(SI - 6.5) / 2.5)     | 8, 9  |
| age          | crest time (foot to peak)       | up   | +0.4 ms / year              | 10    |
| age          | pulse (AC) amplitude            | down | -0.4% / year                | rat.  |
| age          | PR; QTc; QRS amplitude          | up;  | +0.5 ms/y; +0.3 ms/y;       | 3, 2, |
|              |                                 | up;  | -0.4%/y                     | 11    |
|              |                                 | down |                             |       |
| BMI          | resting heart rate              | up   | +0.3 bpm per kg/m2          | rat.  |
| BMI          | PPG pulse (AC) amplitude        | down | x e^(-0.035 per kg/m2):     | 12,   |
|              |                                 |      | x0.59 at 40 vs 25           | rat.  |
| BMI          | systolic-wave width             | up   | +0.6% per kg/m2             | rat.  |
| BMI          | SI; QTc                         | up   | +0.05 m/s; +0.7 ms per kg/m2| 13    |
| BMI          | ECG QRS and T amplitude         | down | x e^(-0.02 per kg/m2):      | 13, 14|
|              |                                 |      | x0.74 at 40 vs 25           |       |
| hypertension | SI; reflected-wave height       | up   | +1.5 m/s; +0.05             | 7, 15 |
| hypertension | heart rate; RMSSD               | up;  | +2 bpm; x0.85               | 16, 17|
|              |                                 | down |                             |       |
| hypertension | QRS amplitude (LV hypertrophy)  | up   | x1.1                        | rat.  |
| diabetes     | heart rate; RMSSD; SI           | up;  | +3 bpm; x0.75; +0.7 m/s     | rat.  |
|              |                                 | down;|                             | (neu- |
|              |                                 | up   |                             | ropa.)|
| AF           | RR intervals                    | irr. | independent, lognormal, CV  | 18    |
|              |                                 |      | 0.16-0.32 (per person)      |       |
| AF           | heart rate                      | up   | +12 bpm                     | 18    |
| AF           | ECG P wave; f waves             | gone;| 5-7.5 Hz, 0.02-0.08 mV      | 18    |
|              |                                 | added|                             |       |
| preceding RR | PPG beat amplitude (AF: pulse   | up   | x (RR / mean RR)^0.6        | 19    |
|              | deficit after short beats)      |      |                             |       |
| heart rate   | QT (Fridericia); LVET (notch);  | down | QT = QTc RR^(1/3); LVET =   | 20, 21|
|              | runoff; RMSSD                   |      | 0.41 - 0.0017 HR s; x RR    |       |
| time of day  | heart rate; RMSSD               | cos  | +-5 bpm (peak 16:00, trough | 22    |
|              |                                 |      | 04:00); -+20%               |       |
| respiration  | RR (RSA); PPG baseline (RIIV)   | mod. | 60% of RMSSD variance; 20%  | 23    |
|              | and beat amplitude; ECG         |      | of AC; +-5%; 0.05 mV, +-2.5%|       |

References: [1] Umetani et al., J Am Coll Cardiol 1998 (HRV and HR over nine
decades). [2] Rautaharju et al., AHA/ACCF/HRS recommendations, Circulation
2009 (QT). [3] Rijnbeek et al., J Electrocardiol 2014 (normal ECG values by
age and sex); Macfarlane et al. 1994. [4] Millasseau et al., Clin Sci 2002
(SI = height / dT). [5] Hayward & Kelly, JACC 1997 (women: higher
augmentation). [6] Nunan et al., PACE 2010 (short-term HRV norms). [7]
Reference Values for Arterial Stiffness' Collaboration, Eur Heart J 2010.
[8] Takazawa et al., Hypertension 1998 (aging index of the 2nd-derivative
PPG). [9] Dawber et al. 1973 (PPG classes, notch fading). [10] Allen & Murray,
Physiol Meas 2003. [11] Simonson 1961. [12] Fine et al., Biosensors 2021
(PPG inaccuracy with skin and tissue). [13] Alpert et al. 2001 (ECG in
obesity). [14] Frank et al. 1986 (low QRS voltage in obesity). [15] Laurent
et al., Eur Heart J 2006. [16] Palatini & Julius 1997. [17] Singh et al.,
Hypertension 1998 (Framingham HRV). [18] ESC AF guidelines 2020 (irregularly
irregular RR, no P, f waves). [19] Frank-Starling mechanism. [20] Fridericia
1920. [21] Weissler et al. 1968. [22] circadian heart rate and vagal tone.
[23] respiratory sinus arrhythmia; respiration-induced intensity, amplitude
and ECG-amplitude variation (RIIV, RIAV, EDR). rat.: rationale only.

Labels: age 18-85 (logit-normal, median ~50), sex 0 female / 1 male, height
in cm (163 / 176, sd 7), BMI lognormal around 26.5 rising 0.3% a year
(17-45; ~26% above 30); hypertension, diabetes and AF logistic in age, BMI
and sex (AF also in hypertension): ~38%, ~12% and ~4.4% of a cohort, AF
rising from 0.2% under 33 to 22% over 78 - a little above population rates,
so that small cohorts have positives.

Per segment: heart rate offset (sd 4 bpm) and linear drift across the window
(sd 3 bpm), time of day, respiration rate (sd 8%), vasomotor and posture
jitter of the morphology (SI sd 0.3 m/s, reflection and QRS/T amplitudes sd
8%, systolic width sd 4%), perfusion (sd 15%) and noise level (sd 30%), baseline wander (two slow
sinusoids of ~1% of the PPG DC level or ~0.1 mV, and respiration), additive
noise, and motion artefacts (a 2-10 s Hann-windowed burst of 0.5-4 Hz
oscillations at 3-10x the pulse amplitude, different on every channel; ECG:
0.2-1 mV) in a participant-specific 5-25% of PPG segments and 8% of ECG
segments.

Per wear day (`wear_day`: ~3.4 segments a day; PPG only): the watch is put on anew,
so its fit and the skin's temperature change from day to day while a person's
physiology does not. Strap contact (uniform, loose to tight): the pulse (AC)
amplitude rises then falls with contact force, peaking at a personal optimum
(x0.4-1 across the range), the DC level rises with it (+-20%) and the normalized
pulse narrows (systolic width +-7.5%) [24]; the pulse peak moves against its foot
(crest time +-9 ms: pulse arrival at the foot and the peak shift by up to 22 and
40 ms over a physiologic range of contact pressure [25]). Skin temperature
(normal): pulse amplitude x e^(0.3 z) (cold exposure can all but extinguish a
finger PPG [26]), reflected-wave height -0.04 z (every morphological feature
moves under cold stress [27]; rat. for the direction). Sensor position: channel
gains x e^(0.25 z), DC levels x e^(0.1 z), delays +3 ms z (rat.). Resulting
intraclass correlations (`benchmarks/within_participant.py`, log amplitudes):
pulse amplitude 0.66 and a channel's pulse amplitude 0.66, inside the 0.46-0.86
reported for optical pulse-wave parameters measured twice [28]; crest time 0.96,
reflection height 0.89. In version 1 (sensor geometry fixed per person, only the
segment's perfusion and vasomotor jitter) they were, estimated from its per-segment
spreads rather than measured, ~0.88, ~0.88, 1.0 and ~0.95.
[24] Teng & Zhang, Physiol Meas 25:1323 (2004): contact force 0.2-1.8 N; AC and
AC/DC peak at 0.2-1.0 N, DC rises, normalized pulse area falls. [25] PPG sensor
contact pressure and pulse arrival time, 17 subjects (PMC8856571). [26] PMC5750340
(finger PPG at the end of cold exposure). [27] Photoplethysmography upon cold
stress, Front Physiol 14:1127624 (2023). [28] Sensor comparison on 60 subjects,
optical reflection sensor ICC 0.46-0.86 (PMC6971205).

Speed, measured on the shared 2-core development machine (AMD EPYC, NumPy
2.4, one thread, batches of 256 rows, best of 15, load average ~5): about
2,800 PPG segments (4 x 3,840) and 3,900 ECG segments (3,840) per second of
wall clock, 3,400 and 5,100 per second of CPU time; participants: ~55,000
per second. Rows are made 32 at a time so the temporaries stay in cache.
"""

from __future__ import annotations

import numpy as np

PARTICIPANT_FIELDS = ("age", "sex", "height", "bmi", "hypertension", "diabetes", "af")

MAX_PPG_CHANNELS = 8

# Per-participant morphology latents. They do not depend on the labels: the
# labels act on the signals when segments are made, so overriding a label in a
# table changes the signals through the documented relations only.
MORPHOLOGY_FIELDS = (
    "hr_offset",  # bpm, personal resting-rate offset
    "hrv_scale",  # multiplier on RMSSD
    "resp_rate",  # breaths per minute
    "si_offset",  # m/s, personal stiffness-index offset
    "ppg_crest",  # s, foot to systolic peak (before the age term)
    "ppg_sys_width",  # s, sd of the forward (systolic) wave
    "ppg_refl_amp",  # height of the reflected wave relative to the forward wave
    "ppg_refl_width",  # s, sd of the reflected wave
    "ppg_notch_depth",  # depth of the dicrotic notch with compliant arteries
    "ppg_runoff_amp",  # height of the slow runoff (Windkessel) wave
    "ppg_runoff_delay",  # s, runoff wave after the systolic peak
    "ppg_runoff_width",  # s, sd of the runoff wave at 65 bpm
    "ppg_decay_amp",  # height of the slow diastolic decline
    "perfusion",  # a.u., pulse (AC) amplitude before the BMI and age terms
    "ppg_noise",  # a.u., additive sensor-noise sd
    "motion_rate",  # probability of a motion artefact in a PPG segment
    "ppg_contact_optimum",  # strap contact (0 loose - 1 tight) of the largest pulse
    "ppg_gain",  # [n, MAX_PPG_CHANNELS] channel gains
    "ppg_offset",  # [n, MAX_PPG_CHANNELS] channel DC levels, a.u.
    "ppg_delay",  # [n, MAX_PPG_CHANNELS] channel delays, s
    "ppg_channel_noise",  # [n, MAX_PPG_CHANNELS] channel noise multipliers
    "ppg_wander_gain",  # [n, MAX_PPG_CHANNELS] channel baseline-wander multipliers
    "ecg_r_amp",  # mV, R amplitude in Lead I (electrical axis)
    "ecg_q_frac",  # q depth / R
    "ecg_s_frac",  # S depth / R
    "ecg_r_width",  # s, sd of the R wave
    "ecg_p_amp",  # mV
    "ecg_pr",  # s, PR interval (before the age term)
    "ecg_t_amp",  # mV
    "ecg_t_width",  # s, sd of the T wave's upslope
    "ecg_qtc_offset",  # s
    "ecg_noise",  # mV, additive noise sd
    "af_rr_cv",  # CV of the RR intervals in AF
    "af_f_freq",  # Hz, f-wave frequency in AF
    "af_f_amp",  # mV, f-wave amplitude in AF
)

_TAG_PARTICIPANT, _TAG_PPG, _TAG_ECG, _TAG_WEAR = 101, 202, 303, 404
_RR_MIN, _RR_MAX = 0.3, 2.0  # s
_ECG_LEAD = 0.25  # s from the start of an ECG beat template to its R peak
_MAX_DELAY = 0.015  # s, largest PPG channel delay
_EPS32 = np.float32(2.0**-25)
_LOGISTIC_SCALE = np.float32(np.sqrt(3.0) / np.pi)  # logistic(0, s) has unit variance
_TWO_PI = 2.0 * np.pi
_CHUNK = 32  # rows per pass: keeps the [rows, time] temporaries in cache

# Layout of a participant's uniform draws: normals (Box-Muller pairs), plain
# uniforms, channel uniforms. New fields go at the end of a block's spare slots
# so that existing participants do not change.
_P_NORMALS, _P_UNIFORMS = 12, 28
_P_DRAWS = 2 * _P_NORMALS + _P_UNIFORMS + 5 * MAX_PPG_CHANNELS

# Per segment: 20 Box-Muller pairs (40 normals) and 24 uniforms for scalars.
_S_PAIRS, _S_UNIFORMS = 20, 24
_S_SCALARS = 2 * _S_PAIRS + _S_UNIFORMS

# Per wear day: 13 Box-Muller pairs (skin temperature; channel gains, DC levels and
# delays) and 2 uniforms (strap contact, a spare).
_W_PAIRS, _W_UNIFORMS = 13, 2
_W_DRAWS = 2 * _W_PAIRS + _W_UNIFORMS

# Bumped whenever the same (seed, participant, segment) gives other signals: datasets
# built by another version are other datasets (`ahms_fm.data.sources.synthetic_name`).
# 2: the watch's fit and the skin's temperature change from one wear day to the next.
VERSION = 2


def _check_seed(seed) -> int:
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return seed


def _box_muller(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays of independent standard normals from two of uniforms on [0, 1)."""
    r = np.sqrt(-2.0 * np.log1p(-u))
    return r * np.cos(_TWO_PI * v), r * np.sin(_TWO_PI * v)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def wear_day(segment) -> np.ndarray:
    """The day (0, 1, ...) segment number `segment` falls on: floor((8 + 7 s) / 24).

    The watch is put on once a day: its fit on the wrist and the skin's temperature
    are the same for all of a day's segments and change from day to day.
    """
    return np.floor_divide(8 + 7 * np.asarray(segment, dtype=np.int64), 24)


def segment_hour(segment) -> np.ndarray:
    """Hour of day (0-24) at which segment number `segment` starts: (8 + 7 s) mod 24.

    Seven hours apart (24 and 7 are coprime), so any 24 consecutive segments
    cover every hour of the day and a few consecutive ones already span it.
    """
    return np.mod(8.0 + 7.0 * np.asarray(segment, dtype=np.float64), 24.0)


# ----------------------------------------------------------------------------
# Participants.
# ----------------------------------------------------------------------------


def sample_participants(seed: int, n: int) -> dict[str, np.ndarray]:
    """The participant table: ids, labels (`PARTICIPANT_FIELDS`) and morphology.

    Keys: "participant" (int64 ids 0..n-1); "age", "height", "bmi" (float64);
    "sex" (int64, 0 female / 1 male); "hypertension", "diabetes", "af" (bool);
    and `MORPHOLOGY_FIELDS` (float64, `[n]` or `[n, MAX_PPG_CHANNELS]`).
    Participant i comes from its own generator, so it is the same for every n.
    """
    seed = _check_seed(seed)
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    u = np.empty((n, _P_DRAWS))
    for i in range(n):
        u[i] = np.random.default_rng([_TAG_PARTICIPANT, seed, i]).random(_P_DRAWS)
    z = _box_muller(u[:, :_P_NORMALS], u[:, _P_NORMALS : 2 * _P_NORMALS])[0]
    v = u[:, 2 * _P_NORMALS : 2 * _P_NORMALS + _P_UNIFORMS]
    w = u[:, 2 * _P_NORMALS + _P_UNIFORMS :]
    c = MAX_PPG_CHANNELS

    age = 18.0 + 67.0 * _sigmoid(1.2 * z[:, 0] - 0.05)
    sex = (v[:, 0] < 0.5).astype(np.int64)
    height = np.clip(163.0 + 13.0 * sex + 6.8 * z[:, 1], 140.0, 205.0)
    bmi = np.clip(np.exp(np.log(26.5) + 0.003 * (age - 45.0) + 0.17 * z[:, 2]), 17.0, 45.0)
    htn = v[:, 1] < _sigmoid(-0.9 + 0.065 * (age - 50) + 0.09 * (bmi - 27) + 0.35 * sex)
    dm = v[:, 2] < _sigmoid(-2.5 + 0.045 * (age - 50) + 0.11 * (bmi - 27) + 0.2 * sex)
    af = v[:, 3] < _sigmoid(-3.6 + 0.085 * (age - 60) + 0.5 * htn + 0.03 * (bmi - 27) + 0.4 * sex)
    return {
        "participant": np.arange(n, dtype=np.int64),
        "age": age,
        "sex": sex,
        "height": height,
        "bmi": bmi,
        "hypertension": htn,
        "diabetes": dm,
        "af": af,
        "hr_offset": 6.0 * z[:, 3],
        "hrv_scale": np.exp(0.3 * z[:, 4]),
        "resp_rate": np.clip(15.0 + 2.5 * z[:, 5], 8.0, 24.0),
        "si_offset": 0.8 * z[:, 6],
        "ppg_crest": 0.1 + 0.08 * v[:, 4],
        "ppg_sys_width": 0.036 + 0.028 * v[:, 5],
        "ppg_refl_amp": 0.15 + 0.3 * v[:, 6],
        "ppg_refl_width": 0.05 + 0.025 * v[:, 7],
        "ppg_notch_depth": 0.01 + 0.04 * v[:, 8],
        "ppg_runoff_amp": 0.1 + 0.2 * v[:, 9],
        "ppg_runoff_delay": 0.12 + 0.16 * v[:, 10],
        "ppg_runoff_width": 0.12 + 0.12 * v[:, 11],
        "ppg_decay_amp": 0.2 + 0.3 * v[:, 25],
        "perfusion": 2.0 * np.exp(0.35 * z[:, 7]),
        "ppg_noise": 0.02 + 0.04 * v[:, 12],
        "motion_rate": 0.05 + 0.2 * v[:, 13],
        "ppg_contact_optimum": 0.2 + 0.3 * v[:, 26],
        "ppg_gain": 0.6 + 0.8 * w[:, 0:c],
        "ppg_offset": 150.0 + 150.0 * w[:, c : 2 * c],
        "ppg_delay": _MAX_DELAY * w[:, 2 * c : 3 * c],
        "ppg_channel_noise": 0.7 + 0.6 * w[:, 3 * c : 4 * c],
        "ppg_wander_gain": 0.6 + 0.8 * w[:, 4 * c : 5 * c],
        "ecg_r_amp": 0.7 * np.exp(0.3 * z[:, 8]),
        "ecg_q_frac": 0.03 + 0.12 * v[:, 14],
        "ecg_s_frac": 0.05 + 0.35 * v[:, 15],
        "ecg_r_width": 0.008 + 0.004 * v[:, 16],
        "ecg_p_amp": 0.06 + 0.08 * v[:, 17],
        "ecg_pr": 0.14 + 0.04 * v[:, 18],
        "ecg_t_amp": 0.15 + 0.2 * v[:, 19],
        "ecg_t_width": 0.045 + 0.02 * v[:, 20],
        "ecg_qtc_offset": 0.015 * z[:, 9],
        "ecg_noise": 0.005 + 0.02 * v[:, 21],
        "af_rr_cv": 0.16 + 0.16 * v[:, 22],
        "af_f_freq": 5.0 + 2.5 * v[:, 23],
        "af_f_amp": 0.02 + 0.06 * v[:, 24],
    }


# ----------------------------------------------------------------------------
# Ground truth: the physiology the waveforms are made from.
# ----------------------------------------------------------------------------

TRUTH_PREFIX = "truth_"
# What each modality's signal carries, per participant (units: bpm, ms, s, mV, a.u.).
_TRUTH_RHYTHM = ("truth_resting_hr", "truth_rmssd", "truth_af_rr_cv")
TRUTH_FIELDS = {
    "ppg": (
        *_TRUTH_RHYTHM,
        "truth_reflection_delay",  # s, dT = height / SI
        "truth_reflection_height",  # reflected / forward wave
        "truth_notch_depth",  # dicrotic notch / forward wave
        "truth_crest_time",  # s, foot to systolic peak
        "truth_pulse_amplitude",  # a.u., pulse (AC) amplitude
        "truth_systolic_width",  # s, sd of the forward wave's upslope
    ),
    "ecg": (
        *_TRUTH_RHYTHM,
        "truth_pr",  # s; NaN in AF (no P wave)
        "truth_qrs_amplitude",  # mV, R amplitude
        "truth_qrs_width",  # s, sd of the R wave (the QRS scales with it)
        "truth_qtc",  # s (Fridericia)
        "truth_t_amplitude",  # mV
    ),
}


def ground_truth(participants, modality: str) -> dict[str, np.ndarray]:
    """Per participant, the physiology that `modality`'s waveforms are made from.

    `TRUTH_FIELDS[modality]` -> float64 `[n]` for the n rows of the table, from
    the functions the signal generators call, with the per-segment nuisance at
    its centre: time of day averaged out (its cosine at 0), the segment's
    heart-rate offset and vasomotor, posture and perfusion jitter at 0 (their
    normals' mean). Motion and noise do not enter. So these are each person's
    resting values, what a perfect per-participant feature extractor could
    know; the labels themselves (age, sex, ...) are not among them.

    Rhythm (both): "truth_resting_hr" (bpm); "truth_rmssd" (ms): sinus
    rhythm's target RMSSD at the resting rate, in AF that of independent
    lognormal intervals, sqrt(2 (e^(cv^2) - 1)) x mean RR; "truth_af_rr_cv":
    the RR CV in AF, 0 in sinus rhythm. PPG: reflected-wave delay and height,
    notch depth, crest time, pulse amplitude, systolic width (not the
    stiffness index, a latent the pulse shows only through these). ECG: PR
    (NaN in AF, where there is no P wave), QRS amplitude and width, QTc, T
    amplitude. Amplitudes are in the generator's units: a z-scored window
    keeps them only relative to its noise and other waves.
    """
    if modality not in TRUTH_FIELDS:
        raise ValueError(f"modality must be one of {sorted(TRUTH_FIELDS)}, got {modality!r}")
    n = len(participants["participant"])
    index, _, _ = _rows(participants, np.arange(n), np.zeros(n, np.int64))
    zero = np.zeros(n)
    hr = _heart_rate(participants, index, zero, zero)
    rr0 = 60.0 / hr
    af = participants["af"][index].astype(bool)
    cv = np.where(af, participants["af_rr_cv"][index], 0.0)
    sinus = _rmssd(participants, index, zero, rr0)
    rmssd = np.where(af, np.sqrt(2.0 * np.expm1(cv**2)) * rr0, sinus)
    out = {"truth_resting_hr": hr, "truth_rmssd": 1e3 * rmssd, "truth_af_rr_cv": cv}
    if modality == "ppg":
        s = _ppg_shape(participants, index, hr, np.zeros((n, 3)))
        out |= {
            "truth_reflection_delay": s["delta_t"],
            "truth_reflection_height": s["refl_amp"],
            "truth_notch_depth": s["notch"],
            "truth_crest_time": s["crest"],
            "truth_pulse_amplitude": _ppg_ac(participants, index, zero),
            "truth_systolic_width": s["sys_width"],
        }
    else:
        s = _ecg_shape(participants, index, hr, np.zeros((n, 2)))
        out |= {
            "truth_pr": np.where(af, np.nan, s["pr"]),
            "truth_qrs_amplitude": s["r_amp"],
            "truth_qrs_width": s["r_width"],
            "truth_qtc": s["qtc"],
            "truth_t_amplitude": s["t_amp"],
        }
    assert tuple(out) == TRUTH_FIELDS[modality]
    return out


# ----------------------------------------------------------------------------
# Shared machinery: per-row randomness, rhythm, rendering beats.
# ----------------------------------------------------------------------------


def _rows(participants, index, segment):
    """Validated (rows of the table, participant ids, segment numbers)."""
    missing = [
        k for k in ("participant", *PARTICIPANT_FIELDS, *MORPHOLOGY_FIELDS) if k not in participants
    ]
    if missing:
        raise ValueError(f"participants table lacks {missing}; make it with sample_participants")
    size = len(participants["participant"])
    index, segment = np.broadcast_arrays(np.asarray(index), np.asarray(segment))
    if index.ndim != 1:
        raise ValueError(f"index and segment must be 1-D, got shape {index.shape}")
    if index.size and not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"index must be integers, got {index.dtype}")
    if segment.size and not np.issubdtype(segment.dtype, np.integer):
        raise ValueError(f"segment must be integers, got {segment.dtype}")
    index = index.astype(np.int64)
    segment = segment.astype(np.int64)
    if index.size and (index.min() < 0 or index.max() >= size):
        raise ValueError(f"index out of range for a table of {size} participants")
    if segment.size and segment.min() < 0:
        raise ValueError("segment numbers must be non-negative")
    pid = np.asarray(participants["participant"], dtype=np.int64)[index]
    if pid.size and pid.min() < 0:
        raise ValueError("participant ids must be non-negative")
    return index, pid, segment


def _draws(seed, tag, pid, segment, n_uniform, noise):
    """Per-row uniforms [n, n_uniform]; fills `noise` [n, ...] with unit-variance noise.

    Each row has its own generator keyed by (tag, seed, participant, segment):
    what a row gets does not depend on the other rows of the call. The noise
    is logistic (close to Gaussian, and 3x cheaper than normals here).
    """
    n = len(pid)
    u = np.empty((n, n_uniform))
    for r in range(n):
        rng = np.random.default_rng([tag, seed, int(pid[r]), int(segment[r])])
        u[r] = rng.random(n_uniform)
        rng.random(out=noise[r], dtype=np.float32)
    tmp = np.subtract(np.float32(1.0) + _EPS32, noise)
    noise += _EPS32
    np.divide(noise, tmp, out=noise)
    np.log(noise, out=noise)
    noise *= _LOGISTIC_SCALE
    return u


def _wear(seed, pid, segment):
    """Per-row uniforms [n, _W_DRAWS] of the row's wear day, keyed by (seed, participant,
    day): every segment of one day gets the same draws."""
    day = wear_day(segment)
    u = np.empty((len(pid), _W_DRAWS))
    for r in range(len(pid)):
        u[r] = np.random.default_rng([_TAG_WEAR, seed, int(pid[r]), int(day[r])]).random(_W_DRAWS)
    return u


def _n_beats(seconds: float) -> int:
    return int(np.ceil((seconds + 3.0) / _RR_MIN)) + 4


def _rhythm(p, index, segment, u, seconds, lead):
    """The heart rhythm of each row.

    `u` holds the row's uniforms: `_S_SCALARS` scalars, then two per beat.
    Returns a dict: "onset" [n, beats] beat times (s, from the start of the
    window; beat 2 is at or before -lead), "rr" [n, beats] (rr[k] precedes
    beat k), "amp" [n, beats] a multiplicative beat amplitude (respiration
    and the preceding RR), "hr" [n] the target rate (bpm), "f_resp", "ph_resp"
    (respiration frequency and phase), "zs" [n, 40] spare normals, "us"
    [n, 24] spare uniforms.
    """
    nb = _n_beats(seconds)
    zs = np.concatenate(_box_muller(u[:, :_S_PAIRS], u[:, _S_PAIRS : 2 * _S_PAIRS]), axis=1)
    us = u[:, 2 * _S_PAIRS : _S_SCALARS]
    beat_u = u[:, _S_SCALARS : _S_SCALARS + 2 * nb]
    z_rr, z_amp = _box_muller(beat_u[:, :nb], beat_u[:, nb:])

    af = p["af"][index].astype(bool)
    circ = np.cos(_TWO_PI * (segment_hour(segment) - 16.0) / 24.0)
    hr = _heart_rate(p, index, circ, zs[:, 0])
    rr0 = 60.0 / hr
    rmssd = _rmssd(p, index, circ, rr0)

    f_resp = p["resp_rate"][index] / 60.0 * np.exp(0.08 * zs[:, 2])
    ph_resp = _TWO_PI * us[:, 1]
    k = np.arange(nb)
    t_nom = (k - 3.0) * rr0[:, None]
    hr_k = hr[:, None] + 3.0 * zs[:, [1]] * (t_nom / seconds - 0.5)
    rr_base = 60.0 / np.clip(hr_k, 35.0, 160.0)
    resp_k = np.sin(_TWO_PI * f_resp[:, None] * t_nom + ph_resp[:, None])
    # RSA carries ~60% of the RMSSD variance, white beat-to-beat noise 40%;
    # a 0.1 Hz (Mayer) wave adds to SDNN and little to RMSSD.
    gain = np.sqrt(2.0) * np.maximum(np.sin(np.pi * f_resp * rr0), 0.2)
    a_rsa = np.sqrt(0.6) * rmssd / gain
    sd_w = np.sqrt(0.4) * rmssd / np.sqrt(2.0)
    lf = np.sin(_TWO_PI * 0.1 * (1.0 + 0.1 * zs[:, [3]]) * t_nom + _TWO_PI * us[:, [2]])
    rr_sinus = rr_base + a_rsa[:, None] * resp_k + 0.8 * rmssd[:, None] * lf + sd_w[:, None] * z_rr
    cv = p["af_rr_cv"][index][:, None]
    rr_af = rr_base * np.exp(cv * z_rr - 0.5 * cv**2)
    rr = np.clip(np.where(af[:, None], rr_af, rr_sinus), _RR_MIN, _RR_MAX)

    c = np.cumsum(rr, axis=1)
    onset = c - c[:, [2]] - us[:, [0]] * rr[:, [3]] - lead
    # Beat amplitude: Frank-Starling (longer filling, bigger beat), respiration,
    # and a little beat-to-beat jitter.
    rel = np.clip(rr / np.mean(rr[:, 3:], axis=1, keepdims=True), 0.4, 1.8)
    amp = rel**0.6 * (1.0 + 0.05 * resp_k + 0.02 * z_amp)
    return {
        "onset": onset,
        "rr": rr,
        "amp": amp,
        "hr": hr,
        "f_resp": f_resp,
        "ph_resp": ph_resp,
        "zs": zs,
        "us": us,
    }


def _heart_rate(p, index, circ, z):
    """Target heart rate (bpm) of rows `index`: the resting rate of the labels and the
    personal offset, the time of day (`circ`, the cosine in [-1, 1]) and the
    segment's own offset (`z`, a standard normal)."""
    age, sex, bmi = p["age"][index], p["sex"][index], p["bmi"][index]
    htn = p["hypertension"][index].astype(np.float64)
    dm = p["diabetes"][index].astype(np.float64)
    af = p["af"][index].astype(bool)
    hr = (
        66.0
        + 4.0 * (1 - sex)
        + 0.3 * (bmi - 25.0)
        - 0.05 * (age - 45.0)
        + 2.0 * htn
        + 3.0 * dm
        + 12.0 * af
        + p["hr_offset"][index]
        + 5.0 * circ
        + 4.0 * z
    )
    return np.clip(hr, 40.0, 140.0)


def _rmssd(p, index, circ, rr0):
    """Target RMSSD (s) of the sinus rhythm of rows `index` at time of day `circ` and
    mean RR interval `rr0` (s)."""
    age = p["age"][index]
    htn = p["hypertension"][index].astype(np.float64)
    dm = p["diabetes"][index].astype(np.float64)
    return (
        0.035
        * np.exp(-0.02 * (age - 40.0))
        * p["hrv_scale"][index]
        * 0.85**htn
        * 0.75**dm
        * (1.0 - 0.2 * circ)
        * (rr0 / 0.91)
    )


def _beat_info(beat_time, rr, seconds):
    """Heart rate (bpm), RMSSD (ms) and beat times (NaN-padded) inside the window."""
    inside = (beat_time >= 0.0) & (beat_time < seconds)
    count = inside.sum(axis=1)
    first = np.argmax(inside, axis=1)
    last = first + count - 1
    rows = np.arange(len(rr))
    span = beat_time[rows, last] - beat_time[rows, first]
    with np.errstate(invalid="ignore", divide="ignore"):
        hr = np.where(count > 1, 60.0 * (count - 1) / span, np.nan)
    # Successive differences of in-window intervals: rr[k] with beats k-1, k inside.
    pair = inside[:, 1:] & inside[:, :-1]
    intervals = np.where(pair, rr[:, 1:], np.nan)
    diff = np.diff(intervals, axis=1)
    with np.errstate(invalid="ignore"):
        n_diff = np.sum(~np.isnan(diff), axis=1)
        rmssd = np.where(
            n_diff > 0, 1e3 * np.sqrt(np.nansum(diff**2, axis=1) / np.maximum(n_diff, 1)), np.nan
        )
    width = int(count.max()) if len(count) else 0
    cols = np.minimum(first[:, None] + np.arange(width), beat_time.shape[1] - 1)
    beats = np.take_along_axis(beat_time, cols, axis=1)
    beats[np.arange(width) >= count[:, None]] = np.nan
    return hr, rmssd, beats


def _table32(table):
    """A template table as flat float32, with the far tails of its waves set to
    zero: subnormal floats would make every operation on them ~100x slower."""
    return np.where(np.abs(table) < 1e-12, 0.0, table).astype(np.float32).ravel()


def _render(onset, amp, table, table_rate, t, beats_back, decay=None):
    """sum over the current and `beats_back - 1` earlier beats of amp_k * table(t - onset_k).

    `onset` [n, beats] sorted per row, with beat 2 at or before t[0] and the
    last beat after t[-1]; `table` [n, L] each row's beat template sampled at
    `table_rate` from its beat's start (zero beyond its end); `t` [time]
    sample times. Linear interpolation. With `decay` (a table like `table`),
    the current beat also adds amp_k * decay(t - onset_k) * (1 - phase), phase
    going from 0 at its onset to 1 at the next: a slow decline that reaches
    zero exactly at the next beat, however long the interval.
    """
    n, nb = onset.shape
    length = len(t)
    fs = 1.0 / (t[1] - t[0])
    # Beat index of every sample: count the beats at or before it (bincount of
    # each beat's first sample, then a running sum along time).
    first = np.clip(np.ceil((onset - t[0]) * fs - 1e-9), 0, length).astype(np.int64)
    first += (np.arange(n) * (length + 1))[:, None]
    counts = np.bincount(first.ravel(), minlength=n * (length + 1)).reshape(n, length + 1)
    idx = np.cumsum(counts[:, :length], axis=1, dtype=np.int32)
    idx += (np.arange(n, dtype=np.int32) * nb - 1)[:, None]  # flat index of the current beat

    t32 = t.astype(np.float32)
    onset32 = onset.astype(np.float32).ravel()
    amp32 = amp.astype(np.float32).ravel()
    tab = _table32(table)
    size = table.shape[1]
    row0 = (np.arange(n, dtype=np.int32) * size)[:, None]
    top = np.float32(size - 1.001)
    out = np.zeros((n, length), np.float32)
    for back in range(beats_back):
        if back:
            idx -= 1
        since = t32 - onset32[idx]
        pos = since * np.float32(table_rate)
        np.clip(pos, 0.0, top, out=pos)
        i0 = pos.astype(np.int32)
        pos -= i0  # fraction
        i0 += row0
        v0 = tab[i0]
        v1 = tab[i0 + 1]
        v1 -= v0
        v1 *= pos
        v0 += v1
        if back == 0 and decay is not None:
            dec = _table32(decay)
            w0 = dec[i0]
            w1 = dec[i0 + 1]
            w1 -= w0
            w1 *= pos
            w0 += w1
            since /= onset32[idx + 1] - onset32[idx + 0]  # phase
            np.subtract(np.float32(1.0), since, out=since)
            w0 *= since
            v0 += w0
        v0 *= amp32[idx]
        out += v0
    return out


def _gauss(tau, mu, sd):
    return np.exp(-0.5 * ((tau - mu[:, None]) / sd[:, None]) ** 2)


def _sinarg(freq, phase, t):
    """float32 [n, time] argument 2 pi f t + phase of per-row sinusoids."""
    arg = (_TWO_PI * np.asarray(freq, np.float64)).astype(np.float32)[:, None] * t
    arg += np.asarray(phase, np.float64).astype(np.float32)[:, None]
    return arg


def _motion_bursts(motion, us, tt, seconds):
    """Rows with a motion artefact, their uniforms, and each one's burst [rows, time]."""
    m_rows = np.flatnonzero(motion)
    if not m_rows.size:
        return m_rows, None, None
    mu = us[m_rows]
    dur = 2.0 + 8.0 * mu[:, 8]  # 2-10 s, anywhere in the segment
    burst = _burst(
        tt, mu[:, 9] * np.maximum(seconds - dur, 0.0), dur, 0.5 + 3.5 * mu[:, 10:13], mu[:, 13:16]
    )
    return m_rows, mu, burst


def _burst(t, start, dur, freqs, phases):
    """Hann-windowed sum of unit sinusoids (phases in cycles), float32 [rows, time]."""
    x = ((t - start[:, None]) / dur[:, None]).astype(np.float32)
    inside = (x > 0) & (x < 1)
    window = np.where(
        inside, np.float32(0.5) - np.float32(0.5) * np.cos(np.float32(_TWO_PI) * x), np.float32(0.0)
    )
    osc = np.zeros_like(window)
    for j in range(freqs.shape[1]):
        osc += np.sin(_sinarg(freqs[:, j], _TWO_PI * phases[:, j], t))
    osc *= window
    osc *= np.float32(1.0 / np.sqrt(freqs.shape[1] / 2.0))
    return osc


# ----------------------------------------------------------------------------
# PPG.
# ----------------------------------------------------------------------------


def _ppg_day(p, index, wear):
    """What the day's wear does to rows `index`'s PPG, from the day's draws `wear`.

    Strap contact c (0 loose - 1 tight, uniform): the pulse amplitude peaks at a
    personal optimum and falls either side (down to x0.4 a whole range away), the
    DC level rises with it (+-20%), the crest time shifts (+-9 ms) and the systolic
    wave narrows (+-7.5%) as the pressure rises. Skin temperature (a normal): warm
    skin perfuses (pulse amplitude x e^(0.3 z)), cold skin's vasoconstriction raises
    the reflected wave (-0.04 z). The watch sits a little elsewhere on the wrist:
    channel gains x e^(0.25 z), DC levels x e^(0.1 z), delays +3 ms z per channel.
    Keys: "ac" [n]; "crest_shift" (s), "width_scale", "refl_shift" [n]; "gain",
    "offset", "delay" (s) [n, MAX_PPG_CHANNELS]. No wear (`wear=None`): the centre
    (optimal contact, mean temperature, the participant's own sensor geometry).
    """
    n, c = len(index), MAX_PPG_CHANNELS
    if wear is None:
        one, zero = np.ones(n), np.zeros(n)
        return {
            "ac": one,
            "crest_shift": zero,
            "width_scale": one,
            "refl_shift": zero,
            "gain": np.ones((n, c)),
            "offset": np.ones((n, c)),
            "delay": np.zeros((n, c)),
        }
    z = np.concatenate(_box_muller(wear[:, :_W_PAIRS], wear[:, _W_PAIRS : 2 * _W_PAIRS]), axis=1)
    contact = wear[:, 2 * _W_PAIRS]
    temp = z[:, 0]
    return {
        "ac": np.exp(-1.5 * (contact - p["ppg_contact_optimum"][index]) ** 2 + 0.3 * temp),
        "crest_shift": 0.018 * (contact - 0.5),
        "width_scale": np.exp(-0.15 * (contact - 0.5) + 0.05 * temp),
        "refl_shift": -0.04 * temp,
        "gain": np.exp(0.25 * z[:, 1 : 1 + c]),
        "offset": (1.0 + 0.4 * (contact - 0.5))[:, None] * np.exp(0.1 * z[:, 1 + c : 1 + 2 * c]),
        "delay": 0.003 * z[:, 1 + 2 * c : 1 + 3 * c],
    }


def _ppg_shape(p, index, hr, z, day=None):
    """The pulse-wave parameters of rows `index` at heart rate `hr` (bpm), a dict of [n].

    `z` [n, 3] normals: the segment's vasomotor state (stiffness index,
    reflection height, systolic width vary a little through the day); `day`:
    `_ppg_day`'s effects of the day's wear (None: none). Keys:
    "si" (m/s), "delta_t", "crest", "sys_width", "refl_width", "lvet",
    "runoff_delay", "runoff_width" (s), "refl_amp" and "notch" (relative to
    the forward wave).
    """
    age, bmi = p["age"][index], p["bmi"][index]
    htn = p["hypertension"][index].astype(np.float64)
    dm = p["diabetes"][index].astype(np.float64)
    si = np.clip(
        6.5
        + 0.09 * (age - 25.0)
        + 1.5 * htn
        + 0.7 * dm
        + 0.05 * (bmi - 25.0)
        + p["si_offset"][index]
        + 0.3 * z[:, 0],
        5.0,
        16.0,
    )
    delta_t = p["height"][index] / 100.0 / si  # s, systolic peak to reflected wave
    day = _ppg_day(p, index, None) if day is None else day
    crest = np.maximum(p["ppg_crest"][index] + 0.0004 * (age - 45.0) + day["crest_shift"], 0.08)
    sys_width = (
        p["ppg_sys_width"][index]
        * (1.0 + 0.006 * (bmi - 25.0))
        * np.exp(0.04 * z[:, 2])
        * day["width_scale"]
    )
    refl_amp = (
        p["ppg_refl_amp"][index] * np.exp(0.08 * z[:, 1])
        + 0.03 * (si - 6.5)
        + 0.05 * htn
        + day["refl_shift"]
    )
    refl_amp = np.clip(refl_amp, 0.15, 0.95)
    # The reflected wave disperses on its way: wider the longer its trip.
    refl_width = p["ppg_refl_width"][index] * np.sqrt(delta_t / 0.2)
    lvet = 0.41 - 0.0017 * hr  # s, ejection time: the dicrotic notch
    # The runoff compresses at higher heart rates (shorter diastole).
    squeeze = np.sqrt(65.0 / hr)
    runoff_delay = p["ppg_runoff_delay"][index] * squeeze
    runoff_width = p["ppg_runoff_width"][index] * squeeze
    distinct = np.minimum(np.exp(-(si - 6.5) / 2.5), 1.0)
    return {
        "si": si,
        "delta_t": delta_t,
        "crest": crest,
        "sys_width": sys_width,
        "refl_amp": refl_amp,
        "refl_width": refl_width,
        "lvet": lvet,
        "runoff_delay": runoff_delay,
        "runoff_width": runoff_width,
        "notch": p["ppg_notch_depth"][index] * distinct,
    }


def _ppg_templates(p, index, hr, z, day, table_rate, duration=1.6):
    """[n, L] PPG pulse of each row from the pulse foot, its diastolic decay, and the
    shape's parameters (`_ppg_shape`: `z` [n, 3] the segment's vasomotor state, `day`
    the day's wear)."""
    s = _ppg_shape(p, index, hr, z, day)
    crest, sys_width, delta_t, lvet = s["crest"], s["sys_width"], s["delta_t"], s["lvet"]
    tau = np.arange(round(duration * table_rate)) / table_rate
    # The forward wave falls more slowly than it rises (asymmetric Gaussian).
    forward = np.where(
        tau < crest[:, None], _gauss(tau, crest, sys_width), _gauss(tau, crest, 1.4 * sys_width)
    )
    pulse = (
        forward
        + s["refl_amp"][:, None] * _gauss(tau, crest + delta_t, s["refl_width"])
        + p["ppg_runoff_amp"][index][:, None]
        * _gauss(tau, crest + s["runoff_delay"], s["runoff_width"])
        - s["notch"][:, None] * _gauss(tau, lvet, np.full_like(lvet, 0.02))
    )
    # Diastolic decay: a slow decline over the whole interval (added per beat
    # by `_render`), rising with the systolic upstroke.
    decay = p["ppg_decay_amp"][index][:, None] * (
        0.5 + 0.5 * np.tanh((tau - crest[:, None]) / sys_width[:, None])
    )
    scale = 1.0 / (pulse + decay).max(axis=1, keepdims=True)
    return pulse * scale, decay * scale, s


def _ppg_ac(p, index, z):
    """Pulse (AC) amplitude (a.u.) of rows `index`; `z` [n] the segment's perfusion normal."""
    age, bmi = p["age"][index], p["bmi"][index]
    return (
        p["perfusion"][index]
        * np.exp(-0.035 * (bmi - 25.0))
        * (1.0 - 0.004 * (age - 45.0))
        * np.exp(0.15 * z)
    )


def ppg_segments(
    seed,
    participants,
    index,
    segment,
    sample_rate=64.0,
    seconds=60.0,
    channels=4,
    return_info=False,
):
    """Raw wrist PPG `[n, time, channels]` float32 (a.u.) of rows `index`, segments `segment`.

    Row r is participant `participants["participant"][index[r]]`'s segment
    `segment[r]`, a function of (seed, participant id, segment) and the row's
    table entries only. With `return_info`, also a dict: "heart_rate" (bpm)
    and "rmssd" (ms) of the beats in the window, "hour", "motion" (bool),
    "beats" (pulse-foot times in s, NaN-padded) - all `[n]` but "beats".
    """
    if not 1 <= channels <= MAX_PPG_CHANNELS:
        raise ValueError(f"channels must be 1..{MAX_PPG_CHANNELS}, got {channels}")
    return _segments(
        _ppg_chunk,
        _TAG_PPG,
        seed,
        participants,
        index,
        segment,
        sample_rate,
        seconds,
        channels,
        return_info,
    )


def _segments(
    chunk_fn, tag, seed, participants, index, segment, sample_rate, seconds, channels, return_info
):
    """Validate, then make the rows in chunks that keep the temporaries in cache."""
    seed = _check_seed(seed)
    if not (sample_rate > 0 and seconds > 0):
        raise ValueError(f"sample_rate and seconds must be positive, got {sample_rate}, {seconds}")
    index, pid, segment = _rows(participants, index, segment)
    length = int(np.rint(seconds * sample_rate))
    if length < 2:
        raise ValueError(f"a segment needs at least 2 samples, got {length}")
    out = np.empty((len(index), length, channels), np.float32)
    infos = []
    for lo in range(0, len(index), _CHUNK):
        rows = slice(lo, lo + _CHUNK)
        u = _draws(
            seed, tag, pid[rows], segment[rows], _S_SCALARS + 2 * _n_beats(seconds), out[rows]
        )
        infos.append(
            chunk_fn(
                participants,
                index[rows],
                segment[rows],
                u,
                _wear(seed, pid[rows], segment[rows]),
                out[rows],
                float(sample_rate),
                float(seconds),
            )
        )
    if not return_info:
        return out
    if not infos:
        infos = [
            chunk_fn(
                participants,
                index,
                segment,
                np.zeros((0, _S_SCALARS + 2 * _n_beats(seconds))),
                np.zeros((0, _W_DRAWS)),
                out,
                float(sample_rate),
                float(seconds),
            )
        ]
    width = max(info["beats"].shape[1] for info in infos)
    for info in infos:
        info["beats"] = np.pad(
            info["beats"], ((0, 0), (0, width - info["beats"].shape[1])), constant_values=np.nan
        )
    return out, {k: np.concatenate([info[k] for info in infos]) for k in infos[0]}


def _ppg_chunk(p, index, segment, u, wear, out, fs, seconds):
    """Fill `out` [n, time, channels] (holding unit noise) with PPG; return the info.

    `wear` [n, _W_DRAWS]: the draws of each row's wear day (`_ppg_day`)."""
    n, length, channels = out.shape
    f32 = np.float32
    shifts = int(np.floor(_MAX_DELAY * fs)) + 2  # integer sample shifts 0..shifts-1
    pad = shifts - 1
    t = np.arange(-pad, length) / fs
    rhy = _rhythm(p, index, segment, u, seconds, lead=pad / fs)
    zs, us = rhy["zs"], rhy["us"]

    table_rate = max(4.0 * fs, 256.0)
    day = _ppg_day(p, index, wear)
    table, decay, shape = _ppg_templates(p, index, rhy["hr"], zs[:, 16:19], day, table_rate)
    pulse = _render(rhy["onset"], rhy["amp"], table, table_rate, t, beats_back=2, decay=decay)

    ac = _ppg_ac(p, index, zs[:, 4]) * day["ac"]
    tt = t[pad:].astype(f32)

    # Components shared by the channels, [n, K, time]: the pulse at integer
    # shifts (a channel's fractional delay mixes two of them), respiration-
    # induced intensity variation (RIIV), slow baseline wander, and ones.
    comp = np.empty((n, shifts + 3, length), f32)
    for s in range(shifts):
        comp[:, s] = pulse[:, pad - s : pad - s + length]
    comp[:, shifts] = np.sin(_sinarg(rhy["f_resp"], rhy["ph_resp"], tt))
    f1, f2 = 0.005 + 0.03 * us[:, 3], 0.02 + 0.08 * us[:, 4]
    slow = comp[:, shifts + 1]
    np.sin(_sinarg(f2, _TWO_PI * us[:, 6], tt), out=slow)
    slow *= f32(0.5)
    slow += np.sin(_sinarg(f1, _TWO_PI * us[:, 5], tt))
    comp[:, shifts + 2] = 1.0

    # Channel coefficients [n, K, channels].
    gain = (p["ppg_gain"][index] * day["gain"])[:, :channels]
    offset = (p["ppg_offset"][index] * day["offset"])[:, :channels]
    delay = np.clip(p["ppg_delay"][index] + day["delay"], 0.0, _MAX_DELAY)[:, :channels] * fs
    whole = np.floor(delay).astype(np.int64)
    frac = delay - whole
    coef = np.zeros((n, shifts + 3, channels))
    rows, cols = np.indices(whole.shape)
    coef[rows, whole, cols] = gain * ac[:, None] * (1.0 - frac)
    coef[rows, whole + 1, cols] = gain * ac[:, None] * frac
    coef[:, shifts] = gain * (0.2 * np.exp(0.3 * zs[:, 6]) * ac)[:, None]  # RIIV, 20% of AC
    coef[:, shifts + 1] = (
        p["ppg_wander_gain"][index][:, :channels]
        * offset
        * (0.01 * np.exp(0.4 * zs[:, 5]))[:, None]
    )  # wander, ~1% of DC
    coef[:, shifts + 2] = offset
    sd = (p["ppg_noise"][index] * np.exp(0.3 * zs[:, 7]))[:, None] * (
        p["ppg_channel_noise"][index][:, :channels]
    )
    out *= sd[:, None, :].astype(f32)
    out += np.matmul(comp.transpose(0, 2, 1), coef.astype(f32))

    motion = us[:, 7] < p["motion_rate"][index]
    m_rows, mu, burst = _motion_bursts(motion, us, tt, seconds)
    if m_rows.size:
        mix = (3.0 + 7.0 * mu[:, 16]) * ac[m_rows]
        out[m_rows] += (
            burst[:, :, None]
            * (mix[:, None] * zs[m_rows, 8 : 8 + channels]).astype(f32)[:, None, :]
        )
    hr, rmssd, beats = _beat_info(rhy["onset"], rhy["rr"], seconds)
    return {
        "heart_rate": hr,
        "rmssd": rmssd,
        "hour": segment_hour(segment),
        "motion": motion,
        "beats": beats,
        "pulse_amplitude": ac,
        "crest_time": shape["crest"],
        "reflection_height": shape["refl_amp"],
        "channel_gain": gain[:, 0] * ac,
    }


# ----------------------------------------------------------------------------
# ECG.
# ----------------------------------------------------------------------------


def _ecg_shape(p, index, hr, z):
    """The beat parameters of rows `index` at heart rate `hr` (bpm), a dict of [n].

    `z` [n, 2] normals: the segment's posture and electrode contact (QRS and
    T amplitudes vary a little between recordings). Keys: "r_amp", "t_amp"
    (mV), "r_width" (the R wave's sd), "pr", "qtc", "qt", "t_peak" (from the
    beat template's start), "t_up" (the T wave's upslope sd), all s.
    """
    age, sex, bmi = p["age"][index], p["sex"][index], p["bmi"][index]
    htn = p["hypertension"][index].astype(np.float64)
    r_amp = (
        p["ecg_r_amp"][index]
        * (1.0 + 0.15 * sex)
        * np.exp(-0.02 * (bmi - 25.0))
        * (1.0 - 0.004 * (age - 45.0))
        * (1.0 + 0.1 * htn)
        * np.exp(0.08 * z[:, 0])
    )
    r_width = p["ecg_r_width"][index] + 0.0015 * sex
    pr = p["ecg_pr"][index] + 0.0005 * (age - 45.0)
    qtc = (
        0.405
        + 0.015 * (1 - sex)
        + 0.0003 * (age - 45.0)
        + 0.0007 * (bmi - 25.0)
        + p["ecg_qtc_offset"][index]
    )
    qt = qtc * (60.0 / hr) ** (1.0 / 3.0)  # Fridericia
    t_peak = _ECG_LEAD + qt - 0.135
    t_amp = p["ecg_t_amp"][index] * np.exp(-0.02 * (bmi - 25.0) + 0.08 * z[:, 1])
    t_up = p["ecg_t_width"][index]
    return {
        "r_amp": r_amp,
        "r_width": r_width,
        "pr": pr,
        "qtc": qtc,
        "qt": qt,
        "t_peak": t_peak,
        "t_amp": t_amp,
        "t_up": t_up,
    }


def _ecg_templates(p, index, hr, z, table_rate, duration=0.8):
    """[n, L] Lead-I beat in mV from `_ECG_LEAD` s before the R peak.

    `z` [n, 2] normals: the segment's posture and electrode contact (`_ecg_shape`).
    """
    s = _ecg_shape(p, index, hr, z)
    r_amp, r_width, pr, t_peak, t_amp, t_up = (
        s[k] for k in ("r_amp", "r_width", "pr", "t_peak", "t_amp", "t_up")
    )
    af = p["af"][index].astype(np.float64)
    tau = np.arange(round(duration * table_rate)) / table_rate
    r0 = np.full_like(r_amp, _ECG_LEAD)
    beat = (
        ((1.0 - af) * p["ecg_p_amp"][index])[:, None] * _gauss(tau, r0 - pr + 0.01, 0.022 + 0 * pr)
        - (p["ecg_q_frac"][index] * r_amp)[:, None] * _gauss(tau, r0 - 2.2 * r_width, 0.6 * r_width)
        + r_amp[:, None] * _gauss(tau, r0, r_width)
        - (p["ecg_s_frac"][index] * r_amp)[:, None] * _gauss(tau, r0 + 2.5 * r_width, 0.8 * r_width)
        + t_amp[:, None]
        * np.where(
            tau < t_peak[:, None], _gauss(tau, t_peak, t_up), _gauss(tau, t_peak, 0.65 * t_up)
        )
    )
    # Taper the last 0.1 s to zero: the table must end at zero.
    beat *= np.clip((duration - tau) / 0.1, 0.0, 1.0)
    return beat


def ecg_segments(
    seed, participants, index, segment, sample_rate=128.0, seconds=30.0, return_info=False
):
    """Raw Lead-I-like ECG `[n, time, 1]` float32 (mV) of rows `index`, segments `segment`.

    As `ppg_segments`, including `return_info` ("beats" are R-peak times).
    """
    return _segments(
        _ecg_chunk,
        _TAG_ECG,
        seed,
        participants,
        index,
        segment,
        sample_rate,
        seconds,
        1,
        return_info,
    )


def _ecg_chunk(p, index, segment, u, wear, out, fs, seconds):
    """Fill `out` [n, time, 1] (holding unit noise) with ECG; return the info.

    `wear` (the day's draws) is unused: a watch ECG is taken with a finger on the
    crown, its contact varies per recording (`_ecg_shape`'s segment normals).
    """
    del wear
    length = out.shape[1]
    f32 = np.float32
    t = np.arange(length) / fs
    tt = t.astype(f32)
    rhy = _rhythm(p, index, segment, u, seconds, lead=_ECG_LEAD)
    zs, us = rhy["zs"], rhy["us"]
    table_rate = max(4.0 * fs, 512.0)
    table = _ecg_templates(p, index, rhy["hr"], zs[:, 16:18], table_rate)
    amp = 1.0 + 0.5 * (rhy["amp"] - 1.0)  # milder beat-to-beat amplitude changes than PPG
    x = _render(rhy["onset"], amp, table, table_rate, t, beats_back=3)

    # Baseline: respiration (~0.05 mV) and slow drift (~0.1 mV).
    x += (0.05 * np.exp(0.4 * zs[:, 5])).astype(f32)[:, None] * np.sin(
        _sinarg(rhy["f_resp"], rhy["ph_resp"], tt)
    )
    f1, f2 = 0.005 + 0.03 * us[:, 3], 0.02 + 0.08 * us[:, 4]
    drift = np.sin(_sinarg(f2, _TWO_PI * us[:, 6], tt))
    drift *= f32(0.5)
    drift += np.sin(_sinarg(f1, _TWO_PI * us[:, 5], tt))
    drift *= (0.1 * np.exp(0.4 * zs[:, 6])).astype(f32)[:, None]
    x += drift

    af_rows = np.flatnonzero(p["af"][index])
    if af_rows.size:
        # Fibrillatory waves: a wobbling 5-7.5 Hz oscillation with a harmonic.
        ua, za = us[af_rows], zs[af_rows]
        f = p["af_f_freq"][index[af_rows]] * (1.0 + 0.05 * za[:, 9])
        phase = _sinarg(f, _TWO_PI * ua[:, 19], tt)
        phase += f32(0.6) * np.sin(_sinarg(0.15 + 0.2 * ua[:, 17], _TWO_PI * ua[:, 18], tt))
        fwave = np.sin(phase)
        phase *= f32(2.0)
        phase += (_TWO_PI * ua[:, 20]).astype(f32)[:, None]
        fwave += f32(0.35) * np.sin(phase)
        fwave *= f32(1.0) + f32(0.4) * np.sin(
            _sinarg(np.full(len(af_rows), 0.3), _TWO_PI * ua[:, 21], tt)
        )
        fwave *= p["af_f_amp"][index[af_rows]].astype(f32)[:, None]
        x[af_rows] += fwave

    motion = us[:, 7] < 0.08
    m_rows, mu, burst = _motion_bursts(motion, us, tt, seconds)
    if m_rows.size:
        x[m_rows] += (0.2 + 0.8 * mu[:, 16]).astype(f32)[:, None] * burst
    noise = out[:, :, 0]
    noise *= (p["ecg_noise"][index] * np.exp(0.3 * zs[:, 7])).astype(f32)[:, None]
    noise += x
    hr, rmssd, beats = _beat_info(rhy["onset"] + _ECG_LEAD, rhy["rr"], seconds)
    return {
        "heart_rate": hr,
        "rmssd": rmssd,
        "hour": segment_hour(segment),
        "motion": motion,
        "beats": beats,
    }
