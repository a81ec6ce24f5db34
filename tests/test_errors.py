"""The drawn error tree in hubstream/errors.py is the whole truth: every public error class, under its real parent."""

from __future__ import annotations

import importlib
import pkgutil
import re

import hubstream.errors
from hubstream.errors import HubstreamError, RegistryError
from schemas.emulator.errors import EmulatorError

LIBRARY_PACKAGES = ("hubstream", "schemas", "kafka_producer", "kafka_consumer", "delivery", "devstack", "hubstream_cli")
_NODE = re.compile(r"^(?P<indent>(?:[│ ] {3})*)(?:[├└]── )?(?P<name>[A-Z]\w+)")


def import_every_module() -> None:
    for package_name in LIBRARY_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)


def all_subclasses(root: type) -> set[type]:
    found = set()
    for cls in root.__subclasses__():
        found |= {cls, *all_subclasses(cls)}
    return found


def drawn_parents(doc: str) -> dict[str, str | None]:
    """Each drawn class name → the name drawn above it one level up (None for the root)."""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    lines = doc.splitlines()
    for line in lines[lines.index("HubstreamError") :]:
        if not line.strip():
            break  # the drawing ends at the first blank line
        match = _NODE.match(line)
        assert match, f"not a line of the drawing: {line!r}"
        depth = len(match["indent"]) // 4 + (0 if line == "HubstreamError" else 1)
        del stack[depth:]
        parents[match["name"]] = stack[-1] if stack else None
        stack.append(match["name"])
    return parents


def test_every_error_class_is_drawn_under_its_parent() -> None:
    import_every_module()
    drawn = drawn_parents(hubstream.errors.__doc__ or "")
    assert drawn["HubstreamError"] is None and drawn["SerdeError"] == "HubstreamError"  # the parser reads the drawing
    actual = {
        cls.__name__: next(base.__name__ for base in cls.__bases__ if issubclass(base, HubstreamError))
        for cls in all_subclasses(HubstreamError)
        if not cls.__name__.startswith("_") and not cls.__module__.startswith("tests")
    }
    missing = sorted(set(actual) - set(drawn))
    assert not missing, f"add these to the tree in hubstream/errors.py: {missing}"
    misplaced = {name: (drawn[name], parent) for name, parent in actual.items() if drawn[name] != parent}
    assert not misplaced, f"drawn under the wrong parent (drawn, actual): {misplaced}"
    gone = sorted(set(drawn) - set(actual) - {"HubstreamError"})
    assert not gone, f"drawn but no longer defined: {gone}"


def test_the_emulator_is_not_the_registry_clients_error() -> None:
    assert not issubclass(EmulatorError, RegistryError)
