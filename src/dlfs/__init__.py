"""DL-From-Scratch: deep learning from tensors to a GPT, in NumPy.

The library is organised by concept (``dlfs.tensor``, ``dlfs.autograd``,
``dlfs.optim``, ``dlfs.nn``, ``dlfs.data`` ...); the learner platform lives in
``dlfs.course``. This file deliberately imports nothing, so that the grader can
redirect any topic module to a learner's file before it is first imported.
"""

__version__ = "0.1.0"
