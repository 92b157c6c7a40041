"""The module map holds: only services/ reaches db/, nothing imports cli/, pure modules stay pure."""

from __future__ import annotations

import ast
from pathlib import Path

import maillist

ROOT = Path(maillist.__file__).parent
PURE = {
    "mail", "people", "listoptions", "threads", "policy", "clock", "models", "errors", "config",
    "templating", "postfixmaps", "metrics", "replies", "bodies", "avatars", "urls", "logfilter",
    "smtpresult",
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("maillist")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = {
            target for target in imports_of(path) if target in modules and target != name
        }
    return edges


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def allowed(source: str, target: str) -> bool:
    src, dst = top(source), top(target)
    if target == "maillist.db.store":  # the seam every edge opens and hands down; no SQL in it
        return src not in PURE
    if src == "" or dst == "" or src == dst:
        return dst != "cli" or src in {"", "__main__", "cli"}
    if dst == "cli":
        return src == "__main__"
    if src in PURE:
        return dst in PURE
    if src == "db":
        return dst in PURE
    if src == "sources":  # other servers' data read into a plan: no store, no services
        return dst in PURE
    if src == "services":
        return dst in PURE or dst in {"db", "sources"}
    if src in {"smtp", "delivery", "web"}:
        return dst in PURE or dst == "services"
    if src == "cli":
        # cli/serve.py alone wires the server onto the loop.
        return (
            dst in PURE
            or dst in {"services", "sources"}
            or (dst in {"smtp", "delivery", "web"} and source == "maillist.cli.serve")
        )
    return dst != "cli"


def test_no_forbidden_edges() -> None:
    bad = sorted(
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in targets
        if not allowed(source, target)
    )
    assert bad == []


def test_no_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, ()):
            # A package's __init__ importing its own submodules is not a cycle of ownership.
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                raise AssertionError(
                    "import cycle: " + " -> ".join([*stack[stack.index(nxt) :], nxt])
                )
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)


SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "CREATE ", "SAVEPOINT", "BEGIN", "PRAGMA ")


def test_no_connection_outside_db_and_services() -> None:
    """A connection is a transaction's: services open them (store.write/read) and hand them to
    db/ functions; nobody else holds one (the delivery workers ask services/sending.py)."""
    holders = []
    for path in ROOT.rglob("*.py"):
        name = module_name(path)
        if top(name) in {"db", "services"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                in {
                    "maillist.db",
                    "maillist.db.store",
                }
                and any(alias.name == "Conn" for alias in node.names)
            ):
                holders.append(name)
    assert holders == []


def test_no_sql_outside_db() -> None:
    """SQL is written in db/ only: no statement text and no execute() anywhere else."""
    found = []
    for path in ROOT.rglob("*.py"):
        name = module_name(path)
        if top(name) == "db":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and text.lstrip().startswith(SQL_WORDS):  # SQL is upper case
                found.append(f"{name}: {text[:40]!r}")
            if isinstance(node, ast.Attribute) and node.attr in {"execute", "executemany"}:
                found.append(f"{name}: .{node.attr}()")
    assert found == []
