"""Processes and devices: joining a multi-host run, the data-parallel mesh, and global
arrays from each process's share. Used by training and by inference alike."""

from __future__ import annotations

import os

import jax
from jax.sharding import AxisType


def initialize_distributed() -> None:
    """Join the other processes of a multi-host run, if this is one.

    Explicit: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID (local
    multi-process runs, custom clusters). Otherwise JAX detects Slurm and TPU
    pods itself where `AHMS_FM_DISTRIBUTED=1` (the launchers set it).
    """
    if jax.distributed.is_initialized():
        return
    if "JAX_COORDINATOR_ADDRESS" in os.environ:
        jax.distributed.initialize(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    elif os.environ.get("AHMS_FM_DISTRIBUTED") == "1":
        jax.distributed.initialize()


def make_mesh() -> jax.sharding.Mesh:
    """One data-parallel axis over all devices of all processes."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def to_global(batch: dict, sharding) -> dict:
    """This process's share of the batch -> global arrays sharded over the mesh."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def process_share(n: int) -> slice:
    """This process's rows of a global batch of `n` rows: n // process_count each, in
    process order (what `to_global` expects each process to hold)."""
    share = n // jax.process_count()
    lo = jax.process_index() * share
    return slice(lo, lo + share)
