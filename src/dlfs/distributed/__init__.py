"""Topic 34: distributed data-parallel training from scratch.

- ``dlfs.distributed.ring``: chunking, reduce-scatter, all-gather and the ring all-reduce;
- ``dlfs.distributed.data_parallel``: sharding the batch, flat gradient buffers, the
  synchronous data-parallel step with gradient accumulation;
- ``dlfs.distributed.zero``: ZeRO stage 1 (AdamW state sharded across the ranks);
- ``dlfs.distributed.comm``: the transport (worker processes, shared-memory mailboxes);
- ``dlfs.distributed.mpi``: the same ranks under ``mpiexec`` (mpi4py, optional extra ``dist``);
- ``dlfs.distributed.train``: training runs to compare (``python -m dlfs.distributed.train``).

Public names are imported on first use: ``from dlfs.distributed import ring_allreduce``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.distributed.ring": ["chunk_bounds", "reduce_scatter", "all_gather", "ring_allreduce",
                              "ring_bytes_per_rank"],
    "dlfs.distributed.data_parallel": ["shard_bounds", "flatten_grads", "unflatten_into", "local_gradients",
                                       "data_parallel_step"],
    "dlfs.distributed.zero": ["ZeroAdamW", "optimizer_state_bytes"],
    "dlfs.distributed.comm": ["ProcessGroup", "ShmCommunicator", "LocalCommunicator", "run_collective"],
    "dlfs.distributed.mpi": ["MPICommunicator"],
})
