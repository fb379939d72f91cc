"""Public names of a package, imported from their submodules on first use.

A package's ``__init__`` lists which submodule defines each of its public names::

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {
        "dlfs.nn.layers": ["Linear", "Sequential"],
        ...
    })

so that ``from dlfs.nn import Linear, Sequential`` works while ``import dlfs.nn`` imports
nothing. Nothing is imported ahead of use, which keeps imports cheap and free of cycles
between packages, and lets the course's grader serve a learner's file for a topic module
before that module is first imported. A name is looked up in its module at every access (it
is not cached on the package), so it always comes from the module currently loaded.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, exports: dict[str, list[str]]
                 ) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``.

    exports: submodule name -> the public names it defines. A name listed twice is an error
    (one home per name). ``__getattr__`` raises AttributeError for any other name, so
    ``from package import submodule`` still imports the submodule.
    """
    owner: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in owner:
                raise ValueError(f"{package}: {name!r} is exported from both {owner[name]} and {module}")
            owner[name] = module

    def __getattr__(name: str):
        module = owner.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(owner))

    return sorted(owner), __getattr__, __dir__
