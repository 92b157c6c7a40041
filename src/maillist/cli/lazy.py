"""Modules the command line loads only when a command uses them.

An admin runs many short commands: `maillist --version` and `--help` must not load the
server, the MIME parser, DKIM, psycopg and Unicode's confusables table first (1.2 s of imports
once). Each command module names the services it calls as

    if TYPE_CHECKING:
        from maillist.services import lists as svc
    else:
        svc = lazy("maillist.services.lists")

so the type checker sees the real module, and the module's code runs at its first use."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy(name: str) -> ModuleType:
    """`name`, imported on first attribute access (importlib's LazyLoader)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module {name}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
