"""A pretrained encoder from a checkpoint (or freshly initialized), and its forward pass.

    encoder = load_encoder("runs/ppg")        # the EMA teacher of the latest checkpoint
    z = encoder.embed_windows(windows)        # preprocessed [n, time, channels] -> [n, d]

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
from ahms_fm.data.preprocess import ModalitySpec
from ahms_fm.models.student import Student, StudentGraph
from ahms_fm.parallel import make_mesh, process_share, to_global

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
    _placed: dict = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )  # mesh -> (forward, params, stats)

    @property
    def embed_dim(self) -> int:
        return int(self.config.model.embed_dim)

    @property
    def spec_shape(self) -> tuple[int, int]:
        """(time, channels) of one window."""
        return self.spec.segment_length, self.spec.channels

    def describe(self) -> dict:
        """What produced these embeddings: the metadata `write_embeddings` stores."""
        return {
            "checkpoint": self.source,
            "step": self.step,
            "which": self.which,
            "modality_spec": self.spec.to_dict(),
        }

    def embed_windows(self, x, batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Preprocessed windows `[n, time, channels]` -> embeddings `[n, embed_dim]` float32."""
        x = np.asarray(x)
        want = self.spec_shape
        if x.ndim != 3 or x.shape[1:] != want:
            raise ValueError(
                f"windows must be [n, {want[0]}, {want[1]}] for this encoder "
                f"({_describe_spec(self.spec)}); got shape {x.shape}"
            )
        return self._embed(len(x), lambda lo, hi: x[lo:hi], x.dtype, batch_size, progress)

    def _embed(
        self,
        n: int,
        read: Callable[[int, int], np.ndarray],
        dtype,
        batch_size: int,
        progress: bool,
        desc: str = "embed",
    ) -> np.ndarray:
        """Embeddings of rows [0, n), where `read(lo, hi)` gives rows lo..hi-1 (of `dtype`,
        cast to float32 on the devices) on the host.

        Each process reads only its contiguous share of every global batch.
        """
        out = np.empty((n, self.embed_dim), np.float32)
        if n == 0:
            return out
        mesh = make_mesh()
        batch = _padded_batch(n, batch_size, mesh.size)
        mine = process_share(batch)
        first, share = mine.start, mine.stop - mine.start
        sharding = NamedSharding(mesh, P("data"))
        forward, params, stats = self._on(mesh)
        bar = tqdm(
            total=n,
            unit="window",
            desc=f"{desc} ({self.which})",
            disable=not progress or jax.process_index() > 0,
        )

        def fetch(pending):  # the real rows are the batch's first ones
            start, z = pending
            take = min(batch, n - start)
            out[start : start + take] = multihost_utils.process_allgather(z, tiled=True)[:take]
            bar.update(take)

        pending = None
        for start in range(0, n, batch):
            lo, hi = min(start + first, n), min(start + first + share, n)
            local = np.zeros((share, *self.spec_shape), dtype)  # zero rows pad the batch
            if hi > lo:
                local[: hi - lo] = read(lo, hi)
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
    return (
        f"{spec.channels} {spec.modality} channel(s) at {spec.sample_rate:g} Hz, "
        f"{spec.window_seconds:g} s windows"
    )


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

        _FORWARDS[key] = jax.jit(
            forward, in_shardings=(replicated, replicated, batch), out_shardings=batch
        )
    return _FORWARDS[key]


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
    step_dir = checkpoint.find_checkpoint(path, step)
    info = checkpoint.read_info(step_dir)
    config = config_from_json(info["config"])
    spec = (
        ModalitySpec.from_dict(info["modality_spec"])
        if "modality_spec" in info
        else ModalitySpec.from_config(config)
    )
    model, params, stats = _architecture(config)
    keys = ("teacher_params", "teacher_stats") if which == "teacher" else ("params", "stats")
    state_dir = step_dir / "state"
    checkpointer = ocp.PyTreeCheckpointer()
    saved = checkpointer.metadata(state_dir).item_metadata.tree
    if which == "teacher" and not jax.tree.leaves(saved.get("teacher_params", {})):
        raise ValueError(
            f"{step_dir}: this run has no teacher (teacher.kind = "
            f"{config.teacher.kind!r}, e.g. the SimCLR variant): use "
            'which="student"'
        )
    # Only these two subtrees are read: the optimizer state is never loaded.
    item = {keys[0]: params, keys[1]: stats}
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
    restored = checkpointer.restore(
        state_dir,
        args=ocp.args.PyTreeRestore(item=item, restore_args=as_numpy, partial_restore=True),
    )
    checkpoint.verify(restored, info.get("checksums"), str(step_dir), partial=True)
    return Encoder(
        config,
        spec,
        model,
        restored[keys[0]],
        restored[keys[1]],
        step=int(step_dir.name),
        which=which,
        source=str(step_dir),
    )


@functools.cache
def _init_fn(config_json: str):
    """A jitted initializer (key -> params, stats) of one config's model, compiled once."""
    config = config_from_json(json.loads(config_json))
    return jax.jit(lambda key: _split(config, key)[1:3])


def random_encoder(config, seed: int = 0) -> Encoder:
    """The same architecture, freshly initialized with `seed`: the random-init baseline."""
    model, _, _ = _architecture(config)
    params, stats = jax.device_get(_init_fn(config.to_json_best_effort())(jax.random.key(seed)))
    return Encoder(
        config,
        ModalitySpec.from_config(config),
        model,
        params,
        stats,
        step=0,
        which="random",
        source=f"random(seed={seed})",
    )


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
    return dataclasses.replace(
        encoder, stats=jax.device_get(stats), source=f"{encoder.source}, batch norm calibrated"
    )


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
