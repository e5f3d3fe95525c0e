"""Pretraining: `train_and_evaluate(config, workdir)`.

The same code runs on a laptop CPU, one GPU, a GPU cluster and a TPU pod: a
mesh over every device of every process, the global batch sharded over it,
parameters replicated, one jitted step with donated state. Read top to bottom:
setup, data, model and state, the step, evaluation, the loop.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ahms_fm import augment, checkpoint, config_utils, host_memory, losses, representation
from ahms_fm.data import dataset, sources
from ahms_fm.data.pipeline import pair_pipeline
from ahms_fm.data.preprocess import ModalitySpec
from ahms_fm.lock import WorkdirLock
from ahms_fm.models.student import Student, StudentGraph, split_student
from ahms_fm.monitor import Monitor
from ahms_fm.parallel import initialize_distributed, make_mesh, process_share, to_global

# ----------------------------------------------------------------------------
# Data.
# ----------------------------------------------------------------------------


def prepare_dataset(config) -> Path:
    """The dataset's folder; the synthetic cohort is built on first use (by process 0)."""
    d = config.data
    synthetic = sources.is_synthetic(config)
    name = (
        sources.synthetic_name(
            ModalitySpec.from_config(config),
            d.participants,
            d.segments_per_participant,
            d.synthetic_seed,
        )
        if synthetic
        else ""
    )
    if synthetic and jax.process_index() == 0:
        try:
            dataset.dataset_dir(d.data_dir, d.dataset, name)
        except FileNotFoundError:
            from ahms_fm.ingest import ingest

            logging.info("building the synthetic cohort %s/%s", d.dataset, name)
            ingest(config, progress=False)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("dataset ready")
    path = dataset.dataset_dir(d.data_dir, d.dataset, name)
    ModalitySpec.from_config(config).check_matches(
        ModalitySpec.from_dict(dataset.load_metadata(path)["modality_spec"]), str(path)
    )
    return path


def make_pipeline(config, split, seed_offset: int = 0):
    return pair_pipeline(
        split,
        global_batch=config.batch_size,
        seed=config.seed + seed_offset,
        positives=config.loss.positives,
        sample_by=config.data.sample_by,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        num_workers=config.data.num_workers,
        prefetch=config.data.prefetch,
    )


# ----------------------------------------------------------------------------
# Model and state.
# ----------------------------------------------------------------------------


def make_optimizer(config) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Adam with L2 weight decay added to the gradient, the paper's schedule or warmup-cosine."""
    o, s = config.optimizer, config.schedule
    if s.name == "step_halving":
        schedule = optax.exponential_decay(
            o.learning_rate, s.halve_every_steps, 0.5, staircase=True
        )
    elif s.name == "warmup_cosine":
        schedule = optax.warmup_cosine_decay_schedule(
            0.0,
            o.learning_rate,
            s.warmup_steps,
            max(config.num_steps, s.warmup_steps + 1),
            end_value=o.learning_rate * s.final_fraction,
        )
    else:
        raise ValueError(f"unknown schedule.name {s.name!r}: step_halving or warmup_cosine")
    if o.name != "adam":
        raise ValueError(f"unknown optimizer.name {o.name!r}; known: 'adam'")
    parts = [optax.clip_by_global_norm(o.grad_clip_norm)] if o.grad_clip_norm > 0 else []
    parts += [
        optax.add_decayed_weights(o.weight_decay),
        optax.scale_by_adam(eps=o.adam_eps),
        optax.scale_by_learning_rate(schedule),
    ]
    return optax.chain(*parts), schedule


def init_state(config, tx) -> tuple[StudentGraph, dict]:
    """A fresh training state: {step, params, stats, teacher_params, teacher_stats, opt}."""
    graph, params, stats = split_student(Student(config, nnx.Rngs(config.seed)))
    ema = config.teacher.kind == "ema"
    state = {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "stats": stats,
        # The teacher starts as a copy of the student (own buffers: the state is donated).
        "teacher_params": jax.tree.map(jnp.copy, params) if ema else {},
        "teacher_stats": jax.tree.map(jnp.copy, stats) if ema else {},
        "opt": tx.init(params),
    }
    return graph, state


# ----------------------------------------------------------------------------
# The step.
# ----------------------------------------------------------------------------


def make_train_step(config, model: StudentGraph, tx, schedule):
    """(state, batch) -> (state, metrics): augment, EMA, symmetric loss, Adam."""
    probabilities, aug_params = augment.from_config(config.augment)
    base_key = jax.random.key(config.seed)
    ema = config.teacher.kind == "ema"
    if config.teacher.kind not in ("ema", "none"):
        raise ValueError(f"unknown teacher.kind {config.teacher.kind!r}: 'ema' or 'none'")
    byol = config.loss.name == "byol"
    if byol:
        objective = losses.byol_objective
    elif config.loss.name == "infonce_koleo":
        objective = lambda u, v, ids: losses.contrastive_objective(  # noqa: E731
            u, v, ids, temperature=config.loss.temperature, koleo_weight=config.loss.koleo_weight
        )
    else:
        raise ValueError(f"unknown loss.name {config.loss.name!r}: 'infonce_koleo' or 'byol'")
    momentum = config.teacher.momentum

    def train_step(state, batch):
        key = jax.random.fold_in(base_key, state["step"])
        k_a, k_b, k_drop = jax.random.split(key, 3)
        x_a = augment.cascade(k_a, batch["view_a"].astype(jnp.float32), probabilities, aug_params)
        x_b = augment.cascade(k_b, batch["view_b"].astype(jnp.float32), probabilities, aug_params)
        ids = losses.positive_ids(batch["participant"], config.loss.positives)

        # The teacher follows the student before the gradient step (docs/design.md).
        if ema:
            mix = lambda t, s: momentum * t + (1.0 - momentum) * s  # noqa: E731
            t_params = jax.tree.map(mix, state["teacher_params"], state["params"])
            t_stats = jax.tree.map(mix, state["teacher_stats"], state["stats"])
        else:
            t_params, t_stats = state["teacher_params"], state["teacher_stats"]

        # Both views in one pass (batch norm sees 2 x batch): half the graph to compile.
        x = jnp.concatenate([x_a, x_b])
        if ema:  # teacher: batch statistics, no dropout, no gradient
            t, _ = model.apply(t_params, t_stats, x, train=True)
            t_a, t_b = jnp.split(jax.lax.stop_gradient(t), 2)

        def loss_fn(params):
            s, stats = model.apply(
                params, state["stats"], x, train=True, rngs=nnx.Rngs(k_drop), predict=byol
            )
            s_a, s_b = jnp.split(s, 2)
            if ema:
                loss, parts = losses.symmetrize(objective, s_a, s_b, t_a, t_b, ids)
            else:  # SimCLR-style: the student is its own teacher
                loss, parts = losses.symmetrize(objective, s_a, s_b, s_a, s_b, ids)
            return loss, (parts, stats)

        (loss, (parts, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {
            "step": state["step"] + 1,
            "params": params,
            "stats": stats,
            "teacher_params": t_params,  # empty without a teacher
            "teacher_stats": t_stats,
            "opt": opt,
        }
        out = {
            "loss": loss,
            **parts,
            "learning_rate": schedule(state["step"]),
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(params),
        }
        return new_state, out

    return train_step


# ----------------------------------------------------------------------------
# Evaluation: representation metrics on validation pairs.
# ----------------------------------------------------------------------------


def validation_metrics(config, state, split, embed_fn, sharding) -> dict[str, float]:
    """Embed `eval_batches` validation pairs (no augmentation) with the student's encoder."""
    it = iter(make_pipeline(config, split, seed_offset=1))
    za, zb, ids = [], [], []
    for _ in range(config.eval_batches):
        batch = to_global(next(it), sharding)
        za.append(multihost_utils.process_allgather(embed_fn(state, batch["view_a"]), tiled=True))
        zb.append(multihost_utils.process_allgather(embed_fn(state, batch["view_b"]), tiled=True))
        ids.append(multihost_utils.process_allgather(batch["participant"], tiled=True))
    return representation.representation_metrics(
        np.concatenate(za), np.concatenate(zb), np.concatenate(ids)
    )


def probe_embedder(state, embed_fn, sharding):
    """x [global batch, time, ch] (the same on every process) -> its embeddings, for the
    quick probe (ahms_fm/evaluation/quick.py)."""

    def embed_batch(x):
        local = jax.make_array_from_process_local_data(sharding, x[process_share(len(x))])
        return multihost_utils.process_allgather(embed_fn(state, local), tiled=True)

    return embed_batch


# ----------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------


class _Preemption:
    """SIGTERM sets a flag; the loop saves at the next step boundary and exits."""

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        logging.warning("SIGTERM: saving a checkpoint at the next step boundary")
        self.requested = True

    def any_process(self) -> bool:
        if jax.process_count() == 1:
            return self.requested
        flags = multihost_utils.process_allgather(np.int32(self.requested))
        return bool(np.max(flags))

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)


class ResumeMismatch(ValueError):
    """A run resumed with a config that differs from its checkpoint's in keys that may not
    change on resume (config_utils.RESUMABLE)."""


def _check_resume(saved: dict, now: dict, workdir, step: int) -> None:
    refused, allowed = config_utils.resume_differences(saved, now)
    if refused:
        raise ResumeMismatch(
            f"{workdir}: resuming from step {step} with a config that differs from the "
            f"checkpoint's in {len(refused)} key(s) a resumed run may not change:\n  "
            + "\n  ".join(refused)
            + "\nUse the run's own config (its config.json) or "
            "another --workdir. Keys that may change on resume: "
            + ", ".join(config_utils.RESUMABLE)
        )
    if allowed:
        logging.warning(
            "%s: resuming from step %d with changed %s", workdir, step, "; ".join(allowed)
        )


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or Inf; the run stops without checkpointing that state."""


def _check_finite(loss: float, step: int, state=None) -> None:
    """Stop on a non-finite loss; with `state`, also on any non-finite value in it (the
    loss is computed before the update that produced the state, so it can be finite
    while the state already is not)."""
    if not np.isfinite(loss):
        raise NonFiniteLoss(
            f"loss is {loss} at step {step}; stopping without a checkpoint of this state"
        )
    if state is not None:
        bad = int(_count_nonfinite(state))
        if bad:
            raise NonFiniteLoss(
                f"{bad} non-finite values in the state after step {step} "
                f"(its loss was {loss}); stopping without a checkpoint of "
                "this state"
            )


@jax.jit
def _count_nonfinite(state) -> jax.Array:
    leaves = [
        x
        for x in jax.tree.leaves(state)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return sum((jnp.sum(~jnp.isfinite(x)) for x in leaves), jnp.zeros((), jnp.int32))


def train_and_evaluate(config, workdir) -> dict:
    """Pretrain as `config` says, with checkpoints and metrics in `workdir`.

    Resumes from the latest checkpoint in `workdir` if there is one. A fresh run
    first evaluates its initialization (validation metrics at step 0) and saves it
    as checkpoint 0, kept for good: the probe's "init" baseline is the run's own
    starting point. Returns the last logged metrics.
    """
    config_utils.validate(config)
    initialize_distributed()
    workdir = checkpoint.as_path(workdir)  # a local folder or gs://bucket/run
    # One trainer per workdir (lock.py): process 0 holds the lock for the whole run.
    with WorkdirLock(workdir, active=jax.process_index() == 0) as held:
        return _train(config, workdir, held)


def _train(config, workdir, held: WorkdirLock) -> dict:
    mesh = make_mesh()
    batch_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    if config.batch_size % jax.device_count():
        raise ValueError(
            f"batch_size {config.batch_size} is not divisible by {jax.device_count()} devices"
        )

    path = prepare_dataset(config)
    train_split = dataset.load_split(path, "train")
    val_split = dataset.load_split(path, "validation")
    pipeline = make_pipeline(config, train_split)
    data_iter = iter(pipeline)

    tx, schedule = make_optimizer(config)
    model, state = init_state(config, tx)
    state = jax.device_put(state, replicated)
    # Building the state ran ~240 small eager ops, each compiled and cached for the
    # life of the process: ~380 MB of host memory on CPU, never used again.
    jax.clear_caches()
    state_sharding = jax.tree.map(lambda _: replicated, state)
    train_step = jax.jit(
        make_train_step(config, model, tx, schedule),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=(state_sharding, replicated),
        donate_argnums=0,
    )
    embed_fn = jax.jit(
        lambda s, x: model.embed(s["params"], s["stats"], x.astype(jnp.float32)),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=batch_sharding,
    )

    spec = ModalitySpec.from_config(config)
    info = {
        "config": json.loads(config.to_json_best_effort()),
        "modality_spec": spec.to_dict(),
        "dataset": str(path),
    }
    # Kept: the last few, step 0 forever, every keep_every_steps-th, the best (checkpoint.py).
    ckpt = checkpoint.Checkpoints(
        workdir / "checkpoints",
        keep=config.keep_checkpoints,
        keep_every=config.keep_every_steps,
        best_metric=config.best_metric,
    )
    fresh = ckpt.latest_step() is None
    if not fresh:
        # The latest checkpoint that reads back intact (older ones if it is corrupt), its
        # config compared with this one before any state is read.
        saved, state, data_state, _ = ckpt.restore_latest_good(
            checkpoint.abstract(state),
            lambda saved_info, at: _check_resume(saved_info["config"], info["config"], workdir, at),
        )
        if saved >= config.num_steps:
            ckpt.close()
            print(
                f"{workdir}: finished at step {saved} (num_steps {config.num_steps}); "
                "nothing to do (raise num_steps to train further)",
                flush=True,
            )
            return {}
        data_iter.set_state(data_state)
        if jax.process_index() == 0:
            print(f"{workdir}: resuming from step {saved}", flush=True)
    monitor = Monitor(
        workdir,
        config,
        spec,
        total_steps=config.num_steps,
        devices=jax.device_count(),
        active=jax.process_index() == 0,
        fresh=fresh,
    )
    preemption = _Preemption()
    step = int(state["step"])
    last = {}
    compiled = False
    # On CPU the step's temporaries live in host memory: one step in flight at a time,
    # or the next step's are allocated before the previous step's are freed.
    one_at_a_time = jax.default_backend() == "cpu"
    try:
        if fresh:  # the initialization: validation metrics and checkpoint step 0, kept
            evaluated = validation_metrics(config, state, val_split, embed_fn, batch_sharding)
            monitor.log(0, {f"val/{k}": v for k, v in evaluated.items()}, console=True)
            with monitor.checkpointing():
                ckpt.save(
                    0,
                    state,
                    data_iter.get_state(),  # not a "best" candidate
                    {**info, "checksums": checkpoint.checksums(state)},
                )
        while step < config.num_steps:
            with monitor.waiting_for_data():
                batch = to_global(next(data_iter), batch_sharding)
            if not compiled:  # compile (jit keeps it), then hand the compiler's scratch back
                train_step.lower(state, batch).compile()
                host_memory.release_freed_memory()
                compiled = True
            state, out = train_step(state, batch)
            if one_at_a_time:
                jax.block_until_ready(out)
            step += 1
            if step % config.log_every_steps == 0 or step == config.num_steps:
                last = {k: float(v) for k, v in jax.device_get(out).items()}
                monitor.log(step, last)
                held.refresh()
                _check_finite(last["loss"], step)
            else:
                monitor.count_step()
            evaluated = None
            if step % config.eval_every_steps == 0 or step == config.num_steps:
                evaluated = validation_metrics(config, state, val_split, embed_fn, batch_sharding)
                monitor.log(step, {f"val/{k}": v for k, v in evaluated.items()}, console=True)
            if config.probe.every_steps and (
                step % config.probe.every_steps == 0 or step == config.num_steps
            ):
                from ahms_fm.evaluation import quick  # imports this module

                probed = quick.quick_probe(
                    config,
                    val_split,
                    probe_embedder(state, embed_fn, batch_sharding),
                    batch_size=config.batch_size,
                )
                monitor.log(step, probed, console=True)
            stop = preemption.any_process()
            kept = config.keep_every_steps and step % config.keep_every_steps == 0
            if (
                step % config.checkpoint_every_steps == 0
                or kept
                or step == config.num_steps
                or stop
            ):
                _check_finite(float(out["loss"]), step, state)  # never checkpoint such a state
                with monitor.checkpointing():
                    ckpt.save(
                        step,
                        state,
                        data_iter.get_state(),
                        {**info, "checksums": checkpoint.checksums(state)},
                        metrics=evaluated,
                        force=stop,
                    )
                    if stop:
                        ckpt.wait()
            if stop:
                logging.warning("preempted: checkpoint at step %d saved, exiting", step)
                break
            if evaluated is not None:  # evaluation, probe and checkpoint leave freed memory
                host_memory.release_freed_memory()
    finally:
        ckpt.close()
        monitor.close()
        preemption.restore()
    return last
