"""Orbax checkpoints behind one small interface.

A checkpoint holds three items: `state` (a pytree of arrays: student, teacher,
optimizer, step, RNG), `data` (the Grain iterator's state, JSON) and `info`
(JSON: the config and anything else small). Saving is asynchronous; Orbax
writes into a temporary folder and renames it when complete, so a process
killed mid-write leaves the previous checkpoint as the latest.

Kept (any one reason suffices; the rest are deleted as later ones are saved):
- the last `keep` checkpoints (what a resumed run needs);
- the steps in `keep_steps`, forever: step 0, the run's own initialization,
  which the probe reports as its "init" baseline;
- every step that is a multiple of `keep_every` (0 = none), for probing a run
  at several points of its training (learning curves);
- the best by a validation metric when one is named. Only checkpoints saved
  with that metric compete; those saved without it (between evaluations, on
  preemption) are kept only for the reasons above.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp


class Checkpoints:
    """Save and restore training checkpoints in `directory`."""

    def __init__(
        self,
        directory,
        *,
        keep: int = 3,
        keep_every: int = 0,
        keep_steps: tuple[int, ...] = (0,),
        best_metric: str | None = None,
        best_mode: str = "max",
        asynchronous: bool = True,
    ):
        if keep < 1:
            raise ValueError(
                f"keep (keep_checkpoints) must be at least 1, got {keep}: "
                "a run resumes from its latest checkpoint"
            )
        if keep_every < 0:
            raise ValueError(f"keep_every (keep_every_steps) must be >= 0, got {keep_every}")
        policies = [pp.LatestN(n=keep)]
        if keep_steps:
            policies.append(pp.CustomSteps(steps=list(keep_steps)))
        if keep_every:
            policies.append(pp.EveryNSteps(interval_steps=keep_every))
        if best_metric:
            # Orbax's default would keep every checkpoint saved without metrics, forever.
            policies.append(
                pp.BestN(
                    get_metric_fn=lambda m: m[best_metric],
                    n=1,
                    reverse=best_mode == "min",
                    keep_checkpoints_without_metrics=False,
                )
            )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=pp.AnyPreservationPolicy(policies),
            enable_async_checkpointing=asynchronous,
            cleanup_tmp_directories=True,  # what a killed writer left behind
        )
        self.directory = as_path(directory)
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "data", "info")
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """The steps of the checkpoints kept (complete or being written), in order."""
        return sorted(self._manager.all_steps())

    def save(
        self,
        step: int,
        state,
        data: dict,
        info: dict,
        metrics: dict | None = None,
        force: bool = False,
    ) -> bool:
        """Start saving (asynchronously); returns whether a save was started."""
        return self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave(data),
                info=ocp.args.JsonSave(info),
            ),
            metrics=metrics,
            force=force,
        )

    def restore(self, abstract_state, step: int | None = None):
        """(state, data, info) of `step` (default: the latest), state laid out like
        `abstract_state` (a pytree of jax.ShapeDtypeStruct with shardings)."""
        step = self.latest_step() if step is None else step
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=ocp.args.JsonRestore(),
                info=ocp.args.JsonRestore(),
            ),
        )
        return restored.state, restored.data, restored.info

    def restore_latest_good(self, abstract_state, check_info=None):
        """(step, state, data, info) of the latest checkpoint that reads back and matches
        its checksums, trying older ones (with a warning naming the step and what was
        wrong) when the latest is corrupt; the corrupt ones are moved to
        `corrupt_checkpoints/` beside the checkpoints folder, so that training on does
        not collide with them. `check_info(info, step)` runs on the info before any state
        is read: what it raises (a changed config) propagates."""
        problems, bad = [], []
        for step in sorted(self._manager.all_steps(), reverse=True):
            where = f"{self.directory / str(step)}"
            try:
                info = self.read_info(step)
            except Exception as e:  # any unreadable checkpoint is skipped, whatever the error
                problems.append(f"{where}: info unreadable ({type(e).__name__}: {e})")
            else:
                if check_info is not None:
                    check_info(info, step)
                try:
                    state, data, info = self.restore(abstract_state, step)
                    verify(state, info.get("checksums"), where)
                except Exception as e:
                    problems.append(f"{where}: {type(e).__name__}: {e}")
                else:
                    if bad:
                        self._set_aside(bad)
                    return step, state, data, info
            bad.append(step)
            logging.warning(
                "checkpoint %s is unusable, trying the previous one: %s", where, problems[-1]
            )
        raise CorruptCheckpoint(
            f"{self.directory}: no usable checkpoint:\n  " + "\n  ".join(problems)
        )

    def _set_aside(self, steps) -> None:
        aside = self.directory.parent / "corrupt_checkpoints"
        aside.mkdir(parents=True, exist_ok=True)
        for step in steps:
            target = aside / str(step)
            if target.exists():
                target = aside / f"{step}.{len(list(aside.iterdir()))}"
            (self.directory / str(step)).rename(target)
            logging.warning("moved the corrupt checkpoint %s to %s", step, target)
        self._manager.reload()

    def read_info(self, step: int | None = None) -> dict:
        """The `info` item alone (the config a run was saved with), without the state."""
        step = self.latest_step() if step is None else step
        return self._manager.restore(
            step, args=ocp.args.Composite(info=ocp.args.JsonRestore())
        ).info

    def wait(self):
        self._manager.wait_until_finished()

    def close(self):
        self._manager.wait_until_finished()
        self._manager.close()


class CorruptCheckpoint(RuntimeError):
    """No checkpoint of a run reads back intact."""


def _leaf_sum(x) -> jax.Array:
    """A position-weighted sum of a leaf's raw bits (uint32 words, modulo 2**32)."""
    x = jnp.asarray(x)
    if x.dtype == jnp.bool_:
        words = x.astype(jnp.uint32)
    else:
        unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[x.dtype.itemsize]
        words = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)
    words = words.ravel()
    weights = jnp.arange(words.size, dtype=jnp.uint32) % jnp.uint32(65521) + jnp.uint32(1)
    return jnp.sum(words * weights, dtype=jnp.uint32)


_tree_sums = jax.jit(lambda tree: jax.tree.map(_leaf_sum, tree))


def checksums(tree) -> dict[str, int]:
    """Per-leaf checksums of a state ("path/to/leaf" -> int), computed where the arrays
    live (device or host); saved with each checkpoint, compared when it is restored."""
    sums = jax.device_get(_tree_sums(tree))
    return {
        jax.tree_util.keystr(path): int(v) for path, v in jax.tree_util.tree_leaves_with_path(sums)
    }


PLAUSIBLE = 1e8  # no trained weight, optimizer moment or batch-norm statistic is larger


def verify(tree, expected: dict | None, where: str, *, partial: bool = False) -> None:
    """Raise CorruptCheckpoint naming the arrays whose checksum differs from `expected`
    (`partial`: `tree` is a part of the saved state, e.g. the teacher alone). Checkpoints
    saved without checksums (older runs) are checked for plausibility only: finite, and
    no value above PLAUSIBLE in magnitude."""
    if expected is None:
        bad = [
            jax.tree_util.keystr(p)
            for p, x in jax.tree_util.tree_leaves_with_path(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
            and not bool(jnp.all(jnp.abs(jnp.asarray(x)) <= PLAUSIBLE))
        ]
        if bad:
            raise CorruptCheckpoint(
                f"{where}: non-finite or implausibly large (> {PLAUSIBLE:g})"
                f" values in {', '.join(bad[:5])}"
            )
        return
    got = checksums(tree)
    keys = set(got) if partial else set(got) | set(expected)
    wrong = sorted(k for k in keys if got.get(k) != expected.get(k))
    if wrong:
        raise CorruptCheckpoint(
            f"{where}: {len(wrong)} array(s) differ from the checksums "
            f"saved with them: {', '.join(wrong[:5])}" + (" ..." if len(wrong) > 5 else "")
        )


def is_remote(path) -> bool:
    """gs://bucket/... and the like: object stores (Orbax writes there through tensorstore)."""
    return "://" in str(path)


def as_path(path) -> epath.Path:
    """A local folder made absolute, or a gs:// one kept as it is (pathlib.Path would turn
    "gs://bucket" into "gs:/bucket")."""
    return epath.Path(path) if is_remote(path) else epath.Path(path).absolute()


def abstract(tree):
    """The shape, dtype and sharding of every leaf: what `restore` needs."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


# ----------------------------------------------------------------------------
# Finding checkpoints (for evaluation: no manager, no state restored).
# ----------------------------------------------------------------------------


def _is_step_dir(path: Path) -> bool:
    return path.name.isdigit() and (path / "state").is_dir()


def is_complete(path: Path) -> bool:
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
        if not is_complete(path):
            raise FileNotFoundError(f"{path}: an incomplete checkpoint")
        return path
    steps = list_checkpoints(path)
    if step is None:
        return steps[max(steps)]
    if step not in steps:
        raise FileNotFoundError(
            f"{path}: no complete checkpoint of step {step}; steps: {sorted(steps)}"
        )
    return steps[step]


def list_checkpoints(path) -> dict[int, Path]:
    """{step: step folder} of every complete checkpoint of a run (its workdir or its
    `checkpoints` folder), in increasing step order."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a run, checkpoints folder or checkpoint")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    steps = {int(p.name): p for p in folder.iterdir() if is_complete(p)}
    if not steps:
        raise FileNotFoundError(
            f"{path}: no complete checkpoint (no <step>/state folder in {folder})"
        )
    return dict(sorted(steps.items()))


def read_info(step_dir) -> dict:
    """The checkpoint's JSON `info` item: {"config", "modality_spec", "dataset"}."""
    return ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(
        Path(step_dir) / "info", args=ocp.args.JsonRestore()
    )
