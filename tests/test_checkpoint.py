"""Which checkpoints survive: the last N, step 0 forever, every K-th step for learning
curves, the best by a metric (and only those saved with one compete). A toy state, saved
synchronously; tests/test_train.py checks the same in real runs."""

import jax.numpy as jnp
import numpy as np
import pytest

from ahms_fm import checkpoint


def _folders(path) -> list[int]:
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())


def _save(ckpt, step, metrics=None):
    state = {"step": jnp.asarray(step, jnp.int32), "w": jnp.full((3,), float(step))}
    assert ckpt.save(step, state, {"position": step}, {"note": "toy"}, metrics=metrics)


def test_step_zero_and_every_kth_step_are_kept_besides_the_last_n(tmp_path):
    ckpt = checkpoint.Checkpoints(tmp_path, keep=2, keep_every=4, asynchronous=False)
    for step in range(0, 11):
        _save(ckpt, step)
    assert ckpt.all_steps() == _folders(tmp_path) == [0, 4, 8, 9, 10]
    assert ckpt.latest_step() == 10
    ckpt.close()
    # A resumed run (a new manager on the same folder) keeps them and goes on.
    again = checkpoint.Checkpoints(tmp_path, keep=2, keep_every=4, asynchronous=False)
    assert again.latest_step() == 10
    assert not again.save(0, {"step": jnp.zeros((), jnp.int32), "w": jnp.zeros(3)}, {}, {})
    for step in range(11, 14):
        _save(again, step)
    assert _folders(tmp_path) == [0, 4, 8, 12, 13]
    state, data, _ = again.restore(checkpoint.abstract(
        {"step": jnp.zeros((), jnp.int32), "w": jnp.zeros(3)}), step=0)
    np.testing.assert_array_equal(state["w"], np.zeros(3))  # step 0 is what was saved there
    assert data == {"position": 0}
    again.close()


def test_without_keep_every_only_step_zero_and_the_last_n(tmp_path):
    ckpt = checkpoint.Checkpoints(tmp_path, keep=1, asynchronous=False)
    for step in range(0, 7):
        _save(ckpt, step)
    assert _folders(tmp_path) == [0, 6]
    ckpt.close()
    none = checkpoint.Checkpoints(tmp_path / "none", keep=1, keep_steps=(), asynchronous=False)
    for step in range(0, 3):
        _save(none, step)
    assert _folders(tmp_path / "none") == [2]
    none.close()


def test_best_competes_only_among_checkpoints_with_metrics(tmp_path):
    """Checkpoints saved between evaluations (no metrics) are not kept forever."""
    ckpt = checkpoint.Checkpoints(tmp_path, keep=1, best_metric="retrieval_top1",
                                  asynchronous=False)
    scores = {2: 0.2, 4: 0.9, 6: 0.5, 8: 0.3}
    for step in range(0, 9):
        _save(ckpt, step, {"retrieval_top1": scores[step]} if step in scores else None)
    assert _folders(tmp_path) == [0, 4, 8]  # step 0, the best (4), the last
    ckpt.close()
    low = checkpoint.Checkpoints(tmp_path / "min", keep=1, best_metric="loss", best_mode="min",
                                 asynchronous=False)
    for step, loss in [(1, 3.0), (2, 1.0), (3, 2.0), (4, 2.5)]:
        _save(low, step, {"loss": loss})
    assert _folders(tmp_path / "min") == [2, 4]
    low.close()


def test_keep_must_leave_a_checkpoint_to_resume_from(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        checkpoint.Checkpoints(tmp_path, keep=0)
    with pytest.raises(ValueError, match="keep_every"):
        checkpoint.Checkpoints(tmp_path, keep_every=-1)
