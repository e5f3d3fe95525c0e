"""Command line: `python -m ahms_fm.main --config configs/ppg.py[:variant] --workdir DIR`.

Overrides: `--config.optimizer.learning_rate=3e-4` (unknown keys are errors).
Training (`train_and_evaluate`) is not written yet; until then this builds the
config's encoder, head and objective and runs one augmented forward pass and
loss on a random batch, so the core pieces can be checked end to end.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from ahms_fm import augment, host_memory, losses
from ahms_fm.models import ProjectionHead, count_params, encoder_from_config

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variants].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go.")


def smoke_step(config) -> dict[str, float]:
    """One augmented forward pass and loss of the config's model on random signals."""
    rngs = nnx.Rngs(config.seed)
    encoder = encoder_from_config(config, rngs=rngs)
    head = ProjectionHead(
        config.model.embed_dim, config.head.hidden_dim, config.head.out_dim, config.head.dropout,
        rngs=rngs,
    )
    b, t, c = config.batch_size, config.input.segment_length, config.input.channels
    key = jax.random.key(config.seed)
    signals = jax.random.normal(key, (b, t, c))
    participants = jnp.arange(b) // 2
    probabilities, params = augment.from_config(config.augment)
    k_a, k_b = jax.random.split(jax.random.fold_in(key, 1))
    view_a = augment.cascade(k_a, signals, probabilities, params)
    view_b = augment.cascade(k_b, signals, probabilities, params)
    forward = nnx.jit(lambda enc, hd, x: hd(enc(x)))
    start = time.perf_counter()
    u, v = forward(encoder, head, view_a), forward(encoder, head, view_b)
    loss, parts = losses.contrastive_objective(
        u, v, participants, temperature=config.loss.temperature,
        koleo_weight=config.loss.koleo_weight,
    )
    return {
        "parameters": count_params(encoder),
        "loss": float(loss),
        **{k: float(x) for k, x in parts.items()},
        "seconds": time.perf_counter() - start,
    }


def main(argv):
    del argv
    host_memory.keep_freed_memory()
    config = _CONFIG.value
    print(f"config: {config.modality} ({config.input.channels} x {config.input.segment_length}), "
          f"batch {config.batch_size}, workdir {_WORKDIR.value}")
    print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}")
    result = smoke_step(config)
    print(
        f"encoder: {result['parameters']:,} parameters; one augmented batch -> "
        f"loss {result['loss']:.4f} (InfoNCE {result['info_nce']:.4f}, "
        f"KoLeo {result['koleo']:.4f}) in {result['seconds']:.1f} s"
    )
    print("Training (train_and_evaluate) is not implemented yet: this checked the model, "
          "the augmentations and the objective only.")


def run():
    """Console entry point `ahms-fm`."""
    flags.mark_flags_as_required(["config"])
    app.run(main)


if __name__ == "__main__":
    run()
