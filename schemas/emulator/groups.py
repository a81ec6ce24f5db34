"""Schema groups: the format every schema in a group has, and the compatibility mode new versions must meet.

The mode is ``schemas.compatibility.Mode``, written with its Azure name. Azure's modes are ``None``,
``Backward`` and ``Forward``. ``Full`` and the transitive variants are a hubstream extension: the real
service does not offer them, so a group using one of them cannot be recreated as-is in Azure.

The ``--groups`` file is TOML, one table per group::

    [groups.orders]
    format = "Avro"              # Avro | Json | Custom
    compatibility = "Backward"   # None | Backward | Forward, or (hubstream only) Full,
                                 # BackwardTransitive, ForwardTransitive, FullTransitive

Both keys default to what the default group has: Avro, Backward.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from hubstream.errors import ConfigurationError
from schemas.compatibility import Mode

# Azure allows up to 50 characters for a schema group name
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")


class SchemaFormat(StrEnum):
    AVRO = "Avro"
    JSON = "Json"
    CUSTOM = "Custom"

    @classmethod
    def parse(cls, value: str) -> SchemaFormat:
        for member in cls:
            if member.value.lower() == value.strip().lower():
                return member
        raise ValueError(f"unknown schema format {value!r}; use one of {', '.join(m.value for m in cls)}")


@dataclass(frozen=True)
class SchemaGroup:
    name: str
    format: SchemaFormat = SchemaFormat.AVRO
    compatibility: Mode = Mode.BACKWARD

    def __post_init__(self) -> None:
        if not GROUP_NAME.match(self.name):
            raise ValueError(
                f"invalid schema group name {self.name!r}: 1-50 characters, letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )


def load_groups_file(path: Path) -> list[SchemaGroup]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"groups file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"groups file {path} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"groups"}
    if unknown:
        raise ConfigurationError(
            f"groups file {path}: unknown top-level keys {', '.join(sorted(unknown))}; put each group "
            "in a table named groups.NAME"
        )
    return [_group_from_table(path, name, table) for name, table in data.get("groups", {}).items()]


def _group_from_table(path: Path, name: str, table: object) -> SchemaGroup:
    where = f"groups file {path}, group {name!r}"
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where}: expected a table with format and compatibility")
    unknown = set(table) - {"format", "compatibility"}
    if unknown:
        keys = ", ".join(sorted(unknown))
        raise ConfigurationError(f"{where}: unknown keys {keys}; a group has only format and compatibility")
    try:
        return SchemaGroup(
            name=name,
            format=SchemaFormat.parse(str(table.get("format", SchemaFormat.AVRO.value))),
            compatibility=Mode.parse(str(table.get("compatibility", Mode.BACKWARD.azure_name))),
        )
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc
