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
    state, data, _ = again.restore(
        checkpoint.abstract({"step": jnp.zeros((), jnp.int32), "w": jnp.zeros(3)}), step=0
    )
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
    ckpt = checkpoint.Checkpoints(
        tmp_path, keep=1, best_metric="retrieval_top1", asynchronous=False
    )
    scores = {2: 0.2, 4: 0.9, 6: 0.5, 8: 0.3}
    for step in range(0, 9):
        _save(ckpt, step, {"retrieval_top1": scores[step]} if step in scores else None)
    assert _folders(tmp_path) == [0, 4, 8]  # step 0, the best (4), the last
    ckpt.close()
    low = checkpoint.Checkpoints(
        tmp_path / "min", keep=1, best_metric="loss", best_mode="min", asynchronous=False
    )
    for step, loss in [(1, 3.0), (2, 1.0), (3, 2.0), (4, 2.5)]:
        _save(low, step, {"loss": loss})
    assert _folders(tmp_path / "min") == [2, 4]
    low.close()


def test_keep_must_leave_a_checkpoint_to_resume_from(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        checkpoint.Checkpoints(tmp_path, keep=0)
    with pytest.raises(ValueError, match="keep_every"):
        checkpoint.Checkpoints(tmp_path, keep_every=-1)


def test_checksums_match_an_independent_sum_and_see_a_single_bit(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(7, 300)).astype(np.float32)
    state = {
        "w": jnp.asarray(w),
        "h": jnp.asarray(w[0], jnp.bfloat16),
        "step": jnp.asarray(5, jnp.int32),
    }
    sums = checkpoint.checksums(state)

    def reference(words):  # position-weighted sum of the raw words, modulo 2**32
        words = words.ravel().astype(np.uint64)
        weights = np.arange(words.size, dtype=np.uint64) % 65521 + 1
        return int(np.sum(words * weights) % 2**32)

    assert sums["['w']"] == reference(w.view(np.uint32))
    assert sums["['h']"] == reference(np.asarray(state["h"]).view(np.uint16))
    assert sums["['step']"] == 5
    flipped = w.copy()
    flipped.view(np.uint32)[3, 17] ^= 1 << 9
    assert checkpoint.checksums({**state, "w": jnp.asarray(flipped)})["['w']"] != sums["['w']"]
    with pytest.raises(checkpoint.CorruptCheckpoint, match=r"1 array\(s\) differ.*\['w'\]"):
        checkpoint.verify({**state, "w": jnp.asarray(flipped)}, sums, "here")
    checkpoint.verify({"w": state["w"]}, sums, "here", partial=True)  # a part of the state
    with pytest.raises(checkpoint.CorruptCheckpoint, match="implausibly large"):
        checkpoint.verify({"w": jnp.asarray([1.0, 2.5e38])}, None, "an old checkpoint")


def _corrupt(step_dir, how):
    if how == "metadata":
        (step_dir / "state" / "_METADATA").write_bytes(b"\x8f\x00garbage")
        return
    # The largest data file holds the arrays' chunks, stored as they are: one flipped bit
    # there reads back without complaint; the smaller ones are compressed index nodes.
    data = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    path = max(data, key=lambda p: p.stat().st_size)
    raw = bytearray(path.read_bytes())
    if how == "flip":
        raw[len(raw) // 2] ^= 0x40
    else:  # truncate
        raw = raw[: len(raw) // 2]
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["flip", "truncate", "metadata"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, how, caplog):
    """Before: bit flips loaded silently; a truncated file or garbage _METADATA raised
    UnicodeDecodeError, AttributeError or KeyError with no fallback."""
    directory = tmp_path / "checkpoints"
    ckpt = checkpoint.Checkpoints(directory, keep=5, asynchronous=False)
    states = {}
    for step in (1, 2, 3):
        states[step] = {
            "step": jnp.asarray(step, jnp.int32),
            "w": jnp.asarray(np.random.default_rng(step).normal(size=(64, 64)), jnp.float32),
        }
        ckpt.save(
            step,
            states[step],
            {"position": step},
            {"checksums": checkpoint.checksums(states[step])},
        )
    ckpt.close()
    _corrupt(directory / "3", how)
    again = checkpoint.Checkpoints(directory, keep=5, asynchronous=False)
    step, state, data, _ = again.restore_latest_good(checkpoint.abstract(states[1]))
    assert step == 2 and data == {"position": 2}
    np.testing.assert_array_equal(state["w"], states[2]["w"])
    assert "checkpoints/3 is unusable" in caplog.text
    if how == "flip":  # read back without complaint: only the checksums see it
        assert "differ from the checksums saved with them: ['w']" in caplog.text
    assert (tmp_path / "corrupt_checkpoints" / "3").is_dir() and not (directory / "3").exists()
    assert again.latest_step() == 2
    assert again.save(3, states[3], {"position": 3}, {})  # training on does not collide
    again.close()


def test_no_usable_checkpoint_is_an_error_naming_each(tmp_path):
    directory = tmp_path / "checkpoints"
    ckpt = checkpoint.Checkpoints(directory, asynchronous=False)
    state = {"w": jnp.ones((64, 64))}
    ckpt.save(1, state, {}, {"checksums": checkpoint.checksums(state)})
    ckpt.close()
    _corrupt(directory / "1", "metadata")
    again = checkpoint.Checkpoints(directory, asynchronous=False)
    with pytest.raises(
        checkpoint.CorruptCheckpoint,
        match=r"(?s)no usable checkpoint.*checkpoints/1: UnicodeDecodeError",
    ):
        again.restore_latest_good(checkpoint.abstract(state))
