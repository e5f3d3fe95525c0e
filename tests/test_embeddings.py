"""Embeddings from checkpoints: what is restored, equivalence with a direct forward
pass and across device counts, Parquet round trips, and the raw-signal API.

One tiny PPG run (3 steps, in process) is trained once for the whole module.
"""

import json
import re
import shutil
from types import SimpleNamespace

import jax
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd
import pytest
from conftest import load_config

from ahms_fm import checkpoint, train
from ahms_fm.data import dataset
from ahms_fm.data.preprocess import ModalitySpec, QualitySpec, segment_array
from ahms_fm.data.recording import DataError, Recording
from ahms_fm.evaluation import embeddings as emb

STEPS = 3  # checkpoints at steps 2 and 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = load_config("ppg", "tiny")
    config.data.data_dir = str(tmp_path_factory.mktemp("data"))
    config.num_steps = STEPS
    config.model.stages = ((4, 3, 1, 1), (7, 5, 1, 2))  # two blocks: compiles faster
    workdir = tmp_path_factory.mktemp("run")
    train.train_and_evaluate(config, workdir)
    return SimpleNamespace(config=config, workdir=workdir, dataset=train.prepare_dataset(config))


@pytest.fixture(scope="module")
def teacher(run):
    return emb.load_encoder(run.workdir)


@pytest.fixture(scope="module")
def split(run):
    return dataset.load_split(run.dataset, "validation")  # ~20 records: batches of 8 + a rest


@pytest.fixture(scope="module")
def records(split):
    """Every record of the split, decoded by TFDS (independently of the fast reader)."""
    return [split.records[i] for i in range(len(split))]


@pytest.fixture(scope="module")
def windows(records):
    return np.stack([r["signal"] for r in records]).astype(np.float32)


@pytest.fixture(scope="module")
def table(teacher, split):
    return emb.embed_split(teacher, split, batch_size=8)


def _saved(workdir, step=STEPS) -> dict:
    """A checkpoint's whole state as NumPy, read with Orbax directly (keys as saved)."""
    path = workdir / "checkpoints" / str(step) / "state"
    checkpointer = ocp.PyTreeCheckpointer()
    tree = checkpointer.metadata(path).item_metadata.tree
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))


def _flat(tree) -> dict:
    """{path of string keys: leaf}: Orbax stores integer keys (block numbers) as strings."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {tuple(str(k.key) for k in path): leaf for path, leaf in leaves}


def _assert_same_tree(got, want):
    got, want = _flat(got), _flat(want)
    assert got.keys() == want.keys()
    for k, v in got.items():
        assert isinstance(v, np.ndarray), k
        np.testing.assert_array_equal(v, want[k], err_msg=str(k))


def _close(a, b):
    """Equal up to float32 rounding, relative to the embeddings' scale."""
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_find_checkpoint(run, tmp_path):
    ckpts = run.workdir / "checkpoints"
    latest = ckpts / str(STEPS)
    for given in (run.workdir, ckpts, latest, str(latest)):
        assert emb.find_checkpoint(given) == latest
    assert emb.find_checkpoint(run.workdir, step=2) == ckpts / "2"
    with pytest.raises(FileNotFoundError, match="no complete checkpoint of step 7"):
        emb.find_checkpoint(run.workdir, step=7)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        emb.find_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such run"):
        emb.find_checkpoint(tmp_path / "missing")
    # What a writer killed mid-save leaves is not a checkpoint.
    shutil.copytree(ckpts, tmp_path / "checkpoints")
    (tmp_path / "checkpoints" / str(STEPS)).rename(
        tmp_path / "checkpoints" / f"{STEPS}.orbax-checkpoint-tmp-1234567890"
    )
    assert emb.find_checkpoint(tmp_path) == tmp_path / "checkpoints" / "2"
    # Every complete step, in order (the temporary folder is not one).
    kept = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    assert list(emb.list_checkpoints(run.workdir)) == kept and kept[-1] == STEPS
    assert emb.list_checkpoints(ckpts) == {s: ckpts / str(s) for s in kept}
    assert STEPS not in emb.list_checkpoints(tmp_path)


def test_load_encoder_restores_only_the_asked_weights_as_numpy(run, monkeypatch):
    requested = []
    restore = ocp.PyTreeCheckpointer.restore

    def spy(self, directory, *args, **kwargs):
        out = restore(self, directory, *args, **kwargs)
        requested.append((set(kwargs["args"].item), set(out)))
        return out

    monkeypatch.setattr(ocp.PyTreeCheckpointer, "restore", spy)
    teacher = emb.load_encoder(run.workdir)
    student = emb.load_encoder(run.workdir / "checkpoints", which="student", step=2)
    monkeypatch.undo()
    assert requested == [({"teacher_params", "teacher_stats"},) * 2, ({"params", "stats"},) * 2]

    saved = _saved(run.workdir)
    _assert_same_tree(teacher.params, saved["teacher_params"])
    _assert_same_tree(teacher.stats, saved["teacher_stats"])
    saved2 = _saved(run.workdir, 2)
    _assert_same_tree(student.params, saved2["params"])
    _assert_same_tree(student.stats, saved2["stats"])
    assert not np.array_equal(
        teacher.params["encoder"]["stem"]["kernel"], saved2["params"]["encoder"]["stem"]["kernel"]
    )
    assert (teacher.which, teacher.step, student.which, student.step) == (
        "teacher",
        STEPS,
        "student",
        2,
    )
    assert teacher.source == str(run.workdir / "checkpoints" / str(STEPS))
    # The config comes back from JSON whole, with tuples where the configs have them.
    assert json.loads(teacher.config.to_json()) == json.loads(run.config.to_json_best_effort())
    assert teacher.config.model.stages == run.config.model.stages
    assert teacher.spec == ModalitySpec.from_config(run.config)


def test_a_run_without_teacher_has_only_a_student(run, tmp_path):
    """The SimCLR variant saves teacher_params == {}."""
    state = _saved(run.workdir)
    state.update(teacher_params={}, teacher_stats={})
    config = json.loads(run.config.to_json_best_effort())
    config["teacher"]["kind"] = "none"
    ckpt = checkpoint.Checkpoints(tmp_path / "checkpoints", asynchronous=False)
    ckpt.save(
        5,
        state,
        {},
        {
            "config": config,
            "dataset": "",
            "modality_spec": ModalitySpec.from_config(run.config).to_dict(),
        },
    )
    ckpt.close()
    with pytest.raises(ValueError, match=r'no teacher .*which="student"'):
        emb.load_encoder(tmp_path)
    student = emb.load_encoder(tmp_path, which="student")
    _assert_same_tree(student.params, state["params"])
    with pytest.raises(ValueError, match="which must be one of"):
        emb.load_encoder(tmp_path, which="ema")


def test_embed_split_matches_a_direct_forward_in_record_order(
    teacher, split, records, windows, table
):
    # The reference: one plain jit on one device, the whole split as one batch (no mesh,
    # no padding), on the records as TFDS decodes them.
    reference = jax.jit(teacher.model.embed)(teacher.params, teacher.stats, windows)
    _close(emb.embedding_matrix(table), np.asarray(reference))
    assert len(table) == len(split) == len(records)
    np.testing.assert_array_equal(table["participant_index"], split.participant_of_record)
    by_index = {row["participant_index"]: row["participant"] for row in split.participants}
    assert list(table["participant"]) == [by_index[i] for i in split.participant_of_record]
    for column in ("participant", "recording", "label"):
        assert list(table[column]) == [r[column].decode() for r in records], column
    for column in ("segment", "offset_s", "heart_rate", "quality"):
        np.testing.assert_array_equal(table[column], [r[column] for r in records], column)
    assert set(table["split"]) == {"validation"}
    assert table["participant_index"].dtype == np.int64 and table["segment"].dtype == np.int64
    assert table["heart_rate"].dtype == np.float32
    assert emb.embedding_matrix(table).shape == (len(split), teacher.config.model.embed_dim)


def test_eight_devices_and_one_device_agree_with_a_last_partial_batch(
    teacher, windows, monkeypatch
):
    assert len(windows) % 8 and jax.device_count() == 8
    eight = {b: teacher.embed_windows(windows, batch_size=b) for b in (8, 12)}  # 12 -> 16
    one_device = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    monkeypatch.setattr(train, "make_mesh", lambda: one_device)
    for b, z in eight.items():
        _close(teacher.embed_windows(windows, batch_size=b), z)
    _close(eight[8], eight[12])


def test_batches_are_padded_to_few_shapes():
    assert emb._padded_batch(20, 8, 8) == 8
    assert emb._padded_batch(20, 12, 8) == 16
    assert emb._padded_batch(20, 256, 8) == 32  # fewer rows than a batch: a power of two
    assert emb._padded_batch(3, 256, 8) == 8
    assert emb._padded_batch(5000, 256, 8) == 256
    assert emb._padded_batch(5, 256, 1) == 8


def test_parquet_round_trip(teacher, table, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "out" / "embeddings.parquet"
    meta = {**teacher.describe(), "dataset": "somewhere", "step": np.int64(teacher.step)}
    emb.write_embeddings(table, path, metadata=meta)
    back, z, got = emb.read_embeddings(path)
    pd.testing.assert_frame_equal(back, table.drop(columns=["embedding"]))
    np.testing.assert_array_equal(z, emb.embedding_matrix(table))
    assert z.dtype == np.float32
    assert got == {**teacher.describe(), "dataset": "somewhere"}
    assert pq.read_schema(path).field("embedding").type == pa.list_(pa.float32(), z.shape[1])
    assert [p.name for p in path.parent.iterdir()] == ["embeddings.parquet"]  # no leftovers

    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.parquet"))):
        emb.read_embeddings(tmp_path / "nope.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "bad.parquet"))):
        emb.read_embeddings(tmp_path / "bad.parquet")
    table.drop(columns=["embedding"]).to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(ValueError, match="not an embeddings file"):
        emb.read_embeddings(tmp_path / "plain.parquet")


def test_a_dataset_with_another_modality_spec_is_refused(run, teacher, tmp_path):
    copy = tmp_path / "dataset"
    shutil.copytree(run.dataset, copy)
    meta = json.loads((copy / dataset.METADATA).read_text())
    meta["modality_spec"]["sample_rate"] = 128.0
    (copy / dataset.METADATA).write_text(json.dumps(meta))
    with pytest.raises(
        DataError,
        match=re.escape(str(copy)) + r".*sample_rate: expected 64\.0, "
        r"got 128\.0",
    ):
        emb.embed_split(teacher, dataset.load_split(copy, "validation"), progress=False)


def _pulse(seconds: float, rate: float, channels: int = 4, seed: int = 0) -> np.ndarray:
    """A PPG-like wave at 72 bpm with noise, [time, channels]."""
    t = np.arange(round(seconds * rate)) / rate
    wave = np.sin(2 * np.pi * 1.2 * t) + 0.4 * np.sin(2 * np.pi * 2.4 * t + 0.5)
    noise = np.random.default_rng(seed).normal(0, 0.05, (len(t), channels))
    return 100.0 + wave[:, None] * np.arange(1, channels + 1) + noise


def test_embed_a_raw_signal_as_ingestion_would(run, teacher):
    rate = 100.0  # resampled to 64 Hz
    x = _pulse(40.0, rate)  # five 8 s windows
    x[round(18 * rate) : round(26 * rate), 1] = 42.0  # a dropout: windows 2 and 3 flat
    out = emb.embed(run.workdir, x, sample_rate=rate)  # loads the teacher
    segments = segment_array(
        x,
        rate,
        teacher.spec,
        QualitySpec.from_config(teacher.config),
        hop_seconds=teacher.config.preprocess.hop_seconds,
    )
    assert list(out.reason) == list(segments.reason) == ["", "", "flat", "flat", ""]
    np.testing.assert_array_equal(out.kept, segments.kept)
    np.testing.assert_array_equal(out.offset_s, segments.offset_s)
    np.testing.assert_array_equal(out.segment, np.arange(5))
    np.testing.assert_array_equal(out.recording, np.zeros(5))
    _close(out.embeddings, teacher.embed_windows(segments.signal[segments.kept]))
    assert "teacher, step 3" in out.encoder

    # Several signals, as Recordings: one too short for a window.
    recs = [
        Recording("p", "long", x, rate, "long.csv"),
        Recording("p", "short", x[:500], rate, "short.csv"),
    ]
    many = emb.embed(teacher, recs)
    np.testing.assert_array_equal(many.recording, np.zeros(5))
    np.testing.assert_array_equal(many.too_short, [False, True])
    assert many.names == ["long", "short"]
    _close(many.embeddings, out.embeddings)
    assert emb.embed(teacher, []).embeddings.shape == (0, teacher.config.model.embed_dim)


def test_wrong_signals_are_refused_saying_what_the_checkpoint_expects(teacher):
    x = _pulse(20.0, 64.0, channels=2)
    with pytest.raises(
        DataError,
        match=r"2 channel\(s\), but the checkpoint .* expects 4 ppg "
        r"channel\(s\) at 64 Hz, 8 s windows",
    ):
        emb.embed(teacher, x, sample_rate=64.0)
    with pytest.raises(DataError, match=r"signals\[1\]: 1 channel\(s\)"):
        emb.embed(teacher, [_pulse(20.0, 64.0), x[:, 0]], sample_rate=64.0)
    with pytest.raises(ValueError, match="sample_rate"):
        emb.embed(teacher, _pulse(20.0, 64.0))
    with pytest.raises(ValueError, match=r"windows must be \[n, 512, 4\]"):
        teacher.embed_windows(np.zeros((2, 512, 2)))


def test_random_encoder_is_deterministic_and_not_the_trained_one(teacher, windows):
    x = windows[:8]
    first = emb.random_encoder(teacher.config, seed=0)
    z0 = first.embed_windows(x)
    np.testing.assert_array_equal(emb.random_encoder(teacher.config, seed=0).embed_windows(x), z0)
    z1 = emb.random_encoder(teacher.config, seed=1).embed_windows(x)
    assert not np.allclose(z0, z1, rtol=1e-3, atol=0)
    assert not np.allclose(z0, teacher.embed_windows(x), rtol=1e-3, atol=0)
    assert (first.which, first.step, first.source) == ("random", 0, "random(seed=0)")
    assert jax.tree.structure(first.params) == jax.tree.structure(teacher.params)
