"""Embeddings from a pretrained encoder: of checkpoints, of datasets, of raw signals.

    encoder = load_encoder("runs/ppg")        # the EMA teacher of the latest checkpoint
    table = embed_split(encoder, dataset.load_split(path, "test"))
    write_embeddings(table, "test.parquet", metadata=encoder.describe())
    out = embed("runs/ppg", recording)        # ingestion's preprocessing, then the encoder

Only the encoder's weights are read from a checkpoint (never the optimizer
state), as NumPy on the host; the model is rebuilt from the config stored in
the checkpoint's `info` item. The forward pass is one jitted function with the
batch sharded over every device of every process and the weights replicated,
as in training; batches are padded to one shape so it compiles once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from ahms_fm import checkpoint
from ahms_fm.data.preprocess import ModalitySpec, QualitySpec, segment_recording
from ahms_fm.data.recording import DataError, Recording
from ahms_fm.evaluation.parquet import (  # noqa: F401 (embeddings' public API)
    METADATA_KEY,
    embedding_matrix,
    json_default,
    read_embeddings,
    write_embeddings,
)
from ahms_fm.models.student import Student, StudentGraph
from ahms_fm.parallel import make_mesh, to_global

WHICH = ("teacher", "student")

# ----------------------------------------------------------------------------
# The encoder.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)  # equal only to itself: fields hold arrays
class Encoder:
    """A pretrained (or random) encoder, ready to embed preprocessed windows."""

    config: ml_collections.ConfigDict  # the training config
    spec: ModalitySpec  # what the encoder expects at its input
    model: StudentGraph  # graphdef + other (RNG streams, unused here)
    params: dict  # the weights used (pure dicts of NumPy arrays, as in the train state)
    stats: dict  # batch-norm statistics
    step: int  # checkpoint step (0 for random)
    which: str  # "teacher" | "student" | "random"
    source: str  # checkpoint path or "random(seed=...)"
    _placed: dict = dataclasses.field(default_factory=dict, init=False, repr=False,
                                      compare=False)  # mesh -> (forward, params, stats)

    @property
    def embed_dim(self) -> int:
        return int(self.config.model.embed_dim)

    @property
    def spec_shape(self) -> tuple[int, int]:
        """(time, channels) of one window."""
        return self.spec.segment_length, self.spec.channels

    def describe(self) -> dict:
        """What produced these embeddings: the metadata `write_embeddings` stores."""
        return {"checkpoint": self.source, "step": self.step, "which": self.which,
                "modality_spec": self.spec.to_dict()}

    def embed_windows(self, x, batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Preprocessed windows `[n, time, channels]` -> embeddings `[n, embed_dim]` float32."""
        x = np.asarray(x)
        want = self.spec_shape
        if x.ndim != 3 or x.shape[1:] != want:
            raise ValueError(f"windows must be [n, {want[0]}, {want[1]}] for this encoder "
                             f"({_describe_spec(self.spec)}); got shape {x.shape}")
        return self._embed(len(x), lambda lo, hi: x[lo:hi], x.dtype, batch_size, progress)

    def _embed(self, n: int, read: Callable[[int, int], np.ndarray], dtype, batch_size: int,
               progress: bool, desc: str = "embed") -> np.ndarray:
        """Embeddings of rows [0, n), where `read(lo, hi)` gives rows lo..hi-1 (of `dtype`,
        cast to float32 on the devices) on the host.

        Each process reads only its contiguous share of every global batch.
        """
        out = np.empty((n, self.embed_dim), np.float32)
        if n == 0:
            return out
        mesh = make_mesh()
        batch = _padded_batch(n, batch_size, mesh.size)
        share = batch // jax.process_count()
        first = jax.process_index() * share
        sharding = NamedSharding(mesh, P("data"))
        forward, params, stats = self._on(mesh)
        bar = tqdm(total=n, unit="window", desc=f"{desc} ({self.which})",
                   disable=not progress or jax.process_index() > 0)

        def fetch(pending):  # the real rows are the batch's first ones
            start, z = pending
            take = min(batch, n - start)
            out[start:start + take] = multihost_utils.process_allgather(z, tiled=True)[:take]
            bar.update(take)

        pending = None
        for start in range(0, n, batch):
            lo, hi = min(start + first, n), min(start + first + share, n)
            local = np.zeros((share, *self.spec_shape), dtype)  # zero rows pad the batch
            if hi > lo:
                local[:hi - lo] = read(lo, hi)
            x = to_global({"x": local}, sharding)["x"]
            z = forward(params, stats, x)  # asynchronous
            if pending is not None:  # the previous batch ran while this one was read
                fetch(pending)
            pending = (start, z)
        fetch(pending)
        bar.close()
        return out

    def _on(self, mesh) -> tuple:
        """The jitted forward on `mesh`, and the weights replicated over it (once)."""
        if mesh not in self._placed:
            weights = jax.device_put((self.params, self.stats), NamedSharding(mesh, P()))
            self._placed[mesh] = (_sharded_forward(self.model, mesh), *weights)
        return self._placed[mesh]


def _describe_spec(spec: ModalitySpec) -> str:
    return (f"{spec.channels} {spec.modality} channel(s) at {spec.sample_rate:g} Hz, "
            f"{spec.window_seconds:g} s windows")


def _padded_batch(n: int, batch_size: int, devices: int) -> int:
    """Rows per call: `batch_size` rounded up to a multiple of the devices; for fewer
    windows than that, the next power of two of devices (few shapes to compile)."""
    full = -(-max(1, batch_size) // devices) * devices
    needed = -(-n // devices)  # rows per device
    return min(full, devices * 2 ** math.ceil(math.log2(needed)))


_FORWARDS = {}  # (graph definition, mesh) -> jitted forward


def _sharded_forward(model: StudentGraph, mesh):
    """`(params, stats, x) -> embeddings` jitted on `mesh`: the batch sharded, the weights
    replicated.

    Encoders of one architecture (teacher, student, random) share it, so it
    compiles once per shape: the graph definition fixes the computation, and
    `model.other`, which it closes over, only holds RNG streams that embedding
    never draws from.
    """
    key = (model.graphdef, mesh)
    if key not in _FORWARDS:
        batch, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())

        def forward(params, stats, x):
            return model.embed(params, stats, x.astype(jnp.float32)).astype(jnp.float32)

        _FORWARDS[key] = jax.jit(forward, in_shardings=(replicated, replicated, batch),
                                 out_shardings=batch)
    return _FORWARDS[key]


# ----------------------------------------------------------------------------
# Checkpoints.
# ----------------------------------------------------------------------------


def _is_step_dir(path: Path) -> bool:
    return path.name.isdigit() and (path / "state").is_dir()


def _complete(path: Path) -> bool:
    # Orbax writes into `<step>.orbax-checkpoint-tmp-*` and renames it (or, on
    # object stores, marks completion with a file): this checks either way.
    return _is_step_dir(path) and ocp.step.is_path_finalized(path)


def find_checkpoint(path, step: int | None = None) -> Path:
    """The step folder of a checkpoint: `path` is a run's workdir, its `checkpoints`
    folder, or a step folder; the latest complete step unless `step` is given."""
    path = Path(path).absolute()  # Orbax reads relative paths wrongly
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run, checkpoints folder or checkpoint")
    if _is_step_dir(path):
        if step is not None and int(path.name) != step:
            raise ValueError(f"{path} is the checkpoint of step {path.name}, not {step}")
        if not _complete(path):
            raise FileNotFoundError(f"{path}: an incomplete checkpoint")
        return path
    steps = list_checkpoints(path)
    if step is None:
        return steps[max(steps)]
    if step not in steps:
        raise FileNotFoundError(f"{path}: no complete checkpoint of step {step}; "
                                f"steps: {sorted(steps)}")
    return steps[step]


def list_checkpoints(path) -> dict[int, Path]:
    """{step: step folder} of every complete checkpoint of a run (its workdir or its
    `checkpoints` folder), in increasing step order."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a run, checkpoints folder or checkpoint")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    steps = {int(p.name): p for p in folder.iterdir() if _complete(p)}
    if not steps:
        raise FileNotFoundError(f"{path}: no complete checkpoint (no <step>/state folder "
                                f"in {folder})")
    return dict(sorted(steps.items()))


def read_info(step_dir) -> dict:
    """The checkpoint's JSON `info` item: {"config", "modality_spec", "dataset"}."""
    return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(
        Path(step_dir) / "info", args=ocp.args.JsonRestore())


def _tuples(x):
    """JSON lists back to the tuples the configs write (stages, band_hz, ...)."""
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    return x


def config_from_json(d: dict) -> ml_collections.ConfigDict:
    """A training config from its JSON form (as stored in checkpoints), locked."""
    config = ml_collections.ConfigDict(_tuples(d))
    config.lock()
    return config


def _architecture(config) -> tuple[StudentGraph, dict, dict]:
    """The model `config` describes and the shapes of its params and stats, without
    computing any weight (initializing eagerly takes seconds to tens of seconds)."""
    abstract = nnx.eval_shape(lambda: Student(config, nnx.Rngs(0)))
    graphdef, params, stats, _ = nnx.split(abstract, nnx.Param, nnx.BatchStat, ...)
    # The RNG streams (dropout, unused when embedding) need values: only they are computed.
    other = jax.jit(lambda key: _split(config, key)[3])(jax.random.key(0))
    return StudentGraph(graphdef, other), nnx.to_pure_dict(params), nnx.to_pure_dict(stats)


def _split(config, key):
    student = Student(config, nnx.Rngs(key))
    graphdef, params, stats, other = nnx.split(student, nnx.Param, nnx.BatchStat, ...)
    return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(stats), other


def load_encoder(path, *, which: str = "teacher", step: int | None = None) -> Encoder:
    """The encoder of a checkpoint: the EMA `teacher` (default) or the `student`.

    Restores only those weights and batch-norm statistics, as NumPy arrays; the
    architecture comes from the config stored with the checkpoint.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    step_dir = find_checkpoint(path, step)
    info = read_info(step_dir)
    config = config_from_json(info["config"])
    spec = (ModalitySpec.from_dict(info["modality_spec"]) if "modality_spec" in info
            else ModalitySpec.from_config(config))
    model, params, stats = _architecture(config)
    keys = ("teacher_params", "teacher_stats") if which == "teacher" else ("params", "stats")
    state_dir = step_dir / "state"
    checkpointer = ocp.PyTreeCheckpointer()
    saved = checkpointer.metadata(state_dir).item_metadata.tree
    if which == "teacher" and not jax.tree.leaves(saved.get("teacher_params", {})):
        raise ValueError(f"{step_dir}: this run has no teacher (teacher.kind = "
                         f"{config.teacher.kind!r}, e.g. the SimCLR variant): use "
                         "which=\"student\"")
    # Only these two subtrees are read: the optimizer state is never loaded.
    item = {keys[0]: params, keys[1]: stats}
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
    restored = checkpointer.restore(state_dir, args=ocp.args.PyTreeRestore(
        item=item, restore_args=as_numpy, partial_restore=True))
    checkpoint.verify(restored, info.get("checksums"), str(step_dir), partial=True)
    return Encoder(config, spec, model, restored[keys[0]], restored[keys[1]],
                   step=int(step_dir.name), which=which, source=str(step_dir))


@functools.cache
def _init_fn(config_json: str):
    """A jitted initializer (key -> params, stats) of one config's model, compiled once."""
    config = config_from_json(json.loads(config_json))
    return jax.jit(lambda key: _split(config, key)[1:3])


def random_encoder(config, seed: int = 0) -> Encoder:
    """The same architecture, freshly initialized with `seed`: the random-init baseline."""
    model, _, _ = _architecture(config)
    params, stats = jax.device_get(_init_fn(config.to_json_best_effort())(jax.random.key(seed)))
    return Encoder(config, ModalitySpec.from_config(config), model, params, stats, step=0,
                   which="random", source=f"random(seed={seed})")


def calibrate_batch_norm(encoder: Encoder, windows, *, passes: int = 40) -> Encoder:
    """The encoder with its batch-norm running statistics re-estimated on `windows`.

    A freshly initialized network's statistics are mean 0, variance 1; in eval mode
    they do not normalize, so activations shrink layer by layer (to ~1e-6 here) and a
    random-init baseline's quality depends on its seed by chance. Each pass runs the
    encoder in training mode on the same windows, moving every running average by the
    config's batch-norm momentum toward that batch's statistics (after 40 passes at
    0.9, 1.5% of the initial values remain).
    """
    one_pass = _calibration_pass(encoder.model.graphdef)
    x = jnp.asarray(windows, jnp.float32)
    stats = encoder.stats
    for _ in range(passes):
        stats = one_pass(encoder.params, stats, encoder.model.other, x)
    return dataclasses.replace(encoder, stats=jax.device_get(stats),
                               source=f"{encoder.source}, batch norm calibrated")


_CALIBRATION_PASSES = {}  # graph definition -> jitted pass


def _calibration_pass(graphdef):
    """`(params, stats, other, x) -> stats` after one training-mode forward, jitted once per
    architecture (the K random-init baselines and the run's init share it)."""
    if graphdef not in _CALIBRATION_PASSES:

        @jax.jit
        def one_pass(params, stats, other, x):
            module = nnx.merge(graphdef, params, stats, other, copy=True)
            module.train()
            module.encoder(x)
            return nnx.to_pure_dict(nnx.state(module, nnx.BatchStat))

        _CALIBRATION_PASSES[graphdef] = one_pass
    return _CALIBRATION_PASSES[graphdef]


# ----------------------------------------------------------------------------
# Datasets.
# ----------------------------------------------------------------------------


COLUMNS = {  # per-record fields of a dataset split, and their types in the table
    "participant": str, "participant_index": np.int64, "recording": str,
    "segment": np.int64, "offset_s": np.float32, "label": str,
    "heart_rate": np.float32, "quality": np.float32,
}


class _RecordReader:
    """Records of a split: the signal's raw bytes and the scalar fields, straight from
    the parsed protos (TFDS's generic decoding costs several times more)."""

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
        from tensorflow_datasets.proto import tf_example_pb2

        out = np.empty((hi - lo, *self.shape), self.dtype) if signals else None
        for j in range(hi - lo):  # one by one: the batched read's threads cost more here
            f = tf_example_pb2.Example.FromString(self.source[lo + j]).features.feature
            if signals:
                out[j] = np.frombuffer(f["signal"].bytes_list.value[0],
                                       self.dtype).reshape(self.shape)
            i = lo + j
            for k, t in COLUMNS.items():
                if t is str:
                    self.columns[k][i] = f[k].bytes_list.value[0].decode()
                elif t is np.int64:
                    self.columns[k][i] = f[k].int64_list.value[0]
                else:
                    self.columns[k][i] = f[k].float_list.value[0]
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
    z = encoder._embed(len(split), reader.read, reader.dtype, batch_size, progress,
                       desc=f"embed {split.name}")
    columns = reader.finish()
    table = pd.DataFrame({k: columns[k] for k in ("participant", "participant_index")})
    table["split"] = split.name
    for k in COLUMNS:
        table[k] = columns[k]
    table = table.astype({k: "str" if t is str else t for k, t in COLUMNS.items()}
                         | {"split": "str"})
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
    if isinstance(signals, (list, tuple)) and signals and all(
            isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in signals):
        signals = np.asarray(signals, np.float64)  # one recording, not one per number
    one = isinstance(signals, Recording) or (isinstance(signals, np.ndarray)
                                             and signals.ndim <= 2)
    items = [signals] if one else list(signals)
    out = []
    for i, s in enumerate(items):
        name = "signals" if one else f"signals[{i}]"
        if isinstance(s, Recording):
            if sample_rate is not None and sample_rate != s.sample_rate:
                raise ValueError(f"{name} ({s.source}) is a Recording at "
                                 f"{s.sample_rate:g} Hz; sample_rate={sample_rate} is for "
                                 "raw arrays only")
            out.append(s)
            continue
        try:
            x = np.asarray(s)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name} is not an array of numbers ({e})") from None
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{name} has dtype {x.dtype}: give real numbers (a [time, "
                             "channels] float array), not text or objects")
        if x.ndim > 2:
            raise ValueError(f"{name} has shape {x.shape}: give a [time, channels] "
                             "array per recording (a list for several)")
        if sample_rate is None:
            raise ValueError("sample_rate (Hz) is required with raw arrays")
        out.append(Recording(participant="", recording=name, signal=x,
                             sample_rate=float(sample_rate), source=name))
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
    raise DataError(rec.source, f"{channels} channel(s), but the checkpoint "
                    f"{encoder.source} expects {_describe_spec(spec)}{hint}")


def _warn_about(names, parts, rates, signals, spec: ModalitySpec) -> None:
    """Warnings for what the caller would want to know: nothing embedded (and why), and
    beats that come at an implausible rate for the declared sampling rate."""
    import warnings

    reasons: dict[str, int] = {}
    for s in parts:
        for r in s.reason[s.reason != ""]:
            reasons[r] = reasons.get(r, 0) + 1
    short = [n for n, s in zip(names, parts, strict=True) if s.too_short]
    if parts and not any(s.kept.any() for s in parts):
        why = [f"{n} windows rejected ({r})" for r, n in sorted(reasons.items())]
        if short:
            why.append(f"{len(short)} recording(s) shorter than one {spec.window_seconds:g} s "
                       f"window ({', '.join(short[:5])}{', ...' if len(short) > 5 else ''}); "
                       "the checkpoint's preprocess.max_pad_fraction decides whether short "
                       "ones are padded")
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
            f"they would be {60.0 * likely / period:.0f} bpm", stacklevel=3)


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
        y = bandpass(resample(part, r, spec.sample_rate), spec.sample_rate, spec.band_hz,
                     spec.filter_order)
        bpm, periodicity = estimate_heart_rate(y[None], spec.sample_rate, spec.modality)
        if np.isfinite(bpm[0]) and periodicity[0] >= best[0]:
            best = (float(periodicity[0]), 60.0 * r / float(bpm[0]))
    return best[1]


def embed(checkpoint, signals, *, sample_rate: float | None = None, which: str = "teacher",
          batch_size: int = 256) -> Embedded:
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
    encoder = checkpoint if isinstance(checkpoint, Encoder) else load_encoder(checkpoint,
                                                                              which=which)
    spec, config = encoder.spec, encoder.config
    quality = QualitySpec.from_config(config)
    recordings = _as_recordings(signals, sample_rate)
    pad = config.preprocess.get("max_pad_fraction", 0.0)  # older checkpoints: no padding
    parts = []
    for rec in recordings:
        check_channels(rec, spec, encoder)
        parts.append(segment_recording(rec, spec, quality, config.preprocess.hop_seconds, pad))
    _warn_about([r.recording for r in recordings], parts,
                [r.sample_rate for r in recordings], [r.signal for r in recordings], spec)
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
        reason=reason, kept=reason == "",
        names=[r.recording for r in recordings],
        too_short=np.array([s.too_short for s in parts], bool),
        encoder=f"{encoder.source} ({encoder.which}, step {encoder.step})",
    )


def _concat(arrays: list, dtype, shape: tuple = ()) -> np.ndarray:
    """np.concatenate that also takes no arrays (no signals given)."""
    if not arrays:
        return np.zeros((0, *shape), dtype)
    return np.concatenate(arrays).astype(dtype, copy=False)
