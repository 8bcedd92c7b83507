"""One engine and one Redis client per process: only their own modules create them."""

from __future__ import annotations

import ast
from pathlib import Path

import superior_one

SOURCE_ROOT = Path(superior_one.__file__).parent

# Libraries whose constructors open a connection pool, and the only module allowed
# to call each one. A call counts when it resolves, through the file's imports, to
# one of these dotted prefixes.
ENGINE_FACTORIES = (
    "sqlalchemy.create_engine",
    "sqlalchemy.ext.asyncio.create_async_engine",
    "sqlalchemy.engine.create_engine",
    "psycopg_pool.",
)
REDIS_FACTORIES = ("redis.", "limits.aio.storage.", "coredis.")
# Within those libraries, only these names open connections (exceptions do not).
REDIS_CONSTRUCTORS = frozenset(
    {"Redis", "StrictRedis", "RedisCluster", "ConnectionPool", "BlockingConnectionPool",
     "from_url", "from_pool", "RedisStorage"}
)  # fmt: skip
ENGINE_MODULE = SOURCE_ROOT / "db.py"
REDIS_MODULE = SOURCE_ROOT / "redis.py"
# Simulators are separate development servers, never part of a platform process.
EXEMPT_DIRS = (SOURCE_ROOT / "simulators",)


def _imports(tree: ast.AST) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
    return names


def _dotted(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return [*inner, node.attr] if inner is not None else None
    return None


def _called_names(path: Path) -> set[str]:
    """Return the fully qualified names of everything called in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imports = _imports(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (parts := _dotted(node.func)):
            root = imports.get(parts[0], parts[0])
            names.add(".".join([root, *parts[1:]]))
    return names


def _creates(path: Path, factories: tuple[str, ...]) -> bool:
    names = [n for n in _called_names(path) if n.startswith(factories)]
    if factories is REDIS_FACTORIES:
        names = [n for n in names if n.rsplit(".", 1)[-1] in REDIS_CONSTRUCTORS]
    return bool(names)


def _source_files() -> list[Path]:
    return [
        p for p in SOURCE_ROOT.rglob("*.py") if not any(p.is_relative_to(d) for d in EXEMPT_DIRS)
    ]


def test_engine_created_only_in_db_module() -> None:
    offenders = [
        str(p.relative_to(SOURCE_ROOT))
        for p in _source_files()
        if p != ENGINE_MODULE and _creates(p, ENGINE_FACTORIES)
    ]
    assert offenders == []


def test_redis_client_created_only_in_redis_module() -> None:
    offenders = [
        str(p.relative_to(SOURCE_ROOT))
        for p in _source_files()
        if p != REDIS_MODULE and _creates(p, REDIS_FACTORIES)
    ]
    assert offenders == []


def test_scanner_detects_engine_creation(tmp_path: Path) -> None:
    sample = tmp_path / "rogue.py"
    sample.write_text(
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "engine = create_async_engine('postgresql+psycopg://x')\n"
    )
    assert _creates(sample, ENGINE_FACTORIES)


def test_scanner_detects_redis_client_creation(tmp_path: Path) -> None:
    sample = tmp_path / "rogue.py"
    sample.write_text("import redis.asyncio as r\nclient = r.Redis.from_url('redis://x')\n")
    assert _creates(sample, REDIS_FACTORIES)


def test_scanner_ignores_redis_exceptions(tmp_path: Path) -> None:
    sample = tmp_path / "fine.py"
    sample.write_text("from redis.exceptions import ResponseError\nraise ResponseError('x')\n")
    assert not _creates(sample, REDIS_FACTORIES)


def test_scanner_ignores_project_wrappers(tmp_path: Path) -> None:
    sample = tmp_path / "fine.py"
    sample.write_text("from superior_one.db import create_engine\nengine = create_engine(s)\n")
    assert not _creates(sample, ENGINE_FACTORIES)
