"""Package attributes imported on first use (PEP 562), so that importing one submodule (the pytest
plugin of the test kit, say) does not load the whole runtime with numba."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """(``__getattr__``, ``__dir__``) for ``package``: each name of ``exports`` comes from its module
    (relative to the package) on first access and is then kept in ``namespace`` (the package's
    globals), so later lookups do not come back here."""

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
