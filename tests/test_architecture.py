"""The package map (README, "Architecture"): each layer imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# package -> the project packages it may import (its own subpackages always)
ALLOWED: dict[str, set[str]] = {
    "hubstream": set(),  # the kernel: settings, errors, logging, ports, files, Kafka client config, credentials
    "schemas": {"hubstream"},
    "kafka_producer": {"hubstream", "schemas"},
    "kafka_consumer": {"hubstream", "schemas", "kafka_producer"},
    "delivery": {"hubstream", "schemas", "kafka_producer", "kafka_consumer"},
    "devstack": {"hubstream", "schemas", "kafka_producer", "kafka_consumer"},
    "hubstream_cli": {"hubstream", "schemas", "kafka_producer", "kafka_consumer", "delivery", "devstack"},
}


def project_imports(path: Path) -> set[tuple[str, int]]:
    """(top-level project package, line) of every import in a module, including those inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in ALLOWED}
    return found


def violations(root: Path = REPO) -> list[str]:
    problems = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for imported, line in sorted(project_imports(path)):
                if imported != package and imported not in allowed:
                    problems.append(f"{path.relative_to(root)}:{line} ({package}) imports {imported}")
    return problems


def test_every_package_imports_only_the_layers_below_it() -> None:
    assert violations() == []


def test_every_library_package_is_on_the_map() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages <= set(ALLOWED), f"packages missing from the map: {packages - set(ALLOWED)}"


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "ok.py").write_text("from hubstream.errors import SerdeError\n")
    (tmp_path / "schemas" / "bad.py").write_text("def f():\n    import kafka_consumer.runtime\n")
    assert violations(tmp_path) == ["schemas/bad.py:2 (schemas) imports kafka_consumer"]
