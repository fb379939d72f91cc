"""Loading the CIFAR-10 "python version" batches without running arbitrary code.

``pickle.load`` can call any importable function. These files only need builtin containers
plus, for the ``data`` array, NumPy's array reconstruction. The restricted unpickler below
admits exactly those globals and refuses everything else before it is imported or called.
"""

from __future__ import annotations

import io
import pickle

from dlfs.errors import DataError

# The only globals a CIFAR batch may name. Older NumPy pickles say numpy.core, NumPy 2 writes
# numpy._core; both mean the same function.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


def _resolve(module: str, name: str):
    import numpy as np

    if name == "_reconstruct":
        try:
            from numpy._core.multiarray import _reconstruct          # NumPy >= 2
        except ImportError:                                         # pragma: no cover - NumPy 1.x
            from numpy.core.multiarray import _reconstruct
        return _reconstruct
    return {"ndarray": np.ndarray, "dtype": np.dtype}[name]


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file, *, source: str = "<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self._source = source

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return _resolve(module, name)
        raise DataError(
            f"{self._source}: refusing to unpickle: it references {module}.{name}, which is not "
            "allowed (a CIFAR-10 batch only holds a dict of bytes, lists, ints and a NumPy uint8 "
            "array). The file is corrupt or not a CIFAR-10 batch; do not load it with plain pickle.")


def restricted_loads(data: bytes, *, source: str = "<pickle>"):
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (encoding='bytes', as the CIFAR
    batches were written by Python 2). Any failure becomes a DataError naming ``source``."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=source, encoding="bytes").load()
    except DataError:
        raise
    except Exception as exc:   # UnpicklingError, EOFError, ValueError, TypeError, ...
        raise DataError(f"{source}: not a readable pickle, it is corrupt or truncated "
                        f"({type(exc).__name__}: {exc}).") from None
