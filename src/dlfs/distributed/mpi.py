"""MPI as the transport (``mpi4py``; install with ``pip install -e ".[dist]"``).

:class:`MPICommunicator` gives a rank launched by ``mpiexec`` the interface of
:class:`dlfs.distributed.comm.ShmCommunicator`: ``sendrecv`` is MPI's ``Sendrecv`` to rank+1
from rank-1 (so our ring all-reduce and ZeRO run over MPI unchanged), and ``allreduce`` is
either MPI's own ``Allreduce`` (``allreduce="mpi"``) or our ring (``allreduce="ring"``).
"""

from __future__ import annotations

import numpy as np


def import_mpi():
    """``mpi4py.MPI``, or an ImportError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("the MPI backend needs mpi4py and an MPI library: pip install -e \".[dist]\" "
                          f"(mpi4py and the mpich wheel, which provides mpiexec) — {exc}") from exc
    return MPI


class MPICommunicator:
    """One MPI rank of ``MPI.COMM_WORLD`` (or ``comm``) as a ring member."""

    def __init__(self, allreduce: str = "mpi", comm=None):
        if allreduce not in ("mpi", "ring"):
            raise ValueError(f"allreduce must be 'mpi' or 'ring', got {allreduce!r}")
        MPI = import_mpi()
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.world_size = self.comm.Get_size()
        self.mode = allreduce
        self.bytes_sent = 0

    def sendrecv(self, send: np.ndarray, recv: np.ndarray) -> None:
        """Send ``send`` to rank+1, receive rank-1's message into ``recv`` (C-contiguous arrays)."""
        right, left = (self.rank + 1) % self.world_size, (self.rank - 1) % self.world_size
        self.comm.Sendrecv(sendbuf=send, dest=right, sendtag=0, recvbuf=recv, source=left, recvtag=0)
        self.bytes_sent += send.nbytes

    def allreduce(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` over the ranks in place (MPI's Allreduce or our ring); returns buf."""
        if self.mode == "ring":
            from dlfs.distributed.ring import ring_allreduce
            return ring_allreduce(buf, self)
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        return buf

    def barrier(self) -> None:
        self.comm.Barrier()
