"""The emulator's own admin API, outside Azure's paths: create and list schema groups.

In Azure, groups are created in the portal or through ARM; here ``PUT /$hubstream/groups/{name}``
with ``{"format": "Avro", "compatibility": "Backward"}`` does it. Modes are shown with their Azure
names; ``compatibility_in_azure`` is false for the modes Azure lacks (Full and the transitive ones, a
hubstream extension).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, field_validator

from schemas.compatibility import Mode
from schemas.emulator.errors import InvalidRequestError, NotFoundError
from schemas.emulator.groups import SchemaFormat, SchemaGroup
from schemas.emulator.store import GroupUsage, SchemaStore

PREFIX = "/$hubstream"


class GroupSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: SchemaFormat = SchemaFormat.AVRO
    compatibility: Mode = Mode.BACKWARD

    @field_validator("format", mode="before")
    @classmethod
    def _any_case_format(cls, value: Any) -> Any:
        return SchemaFormat.parse(value) if isinstance(value, str) else value

    @field_validator("compatibility", mode="before")
    @classmethod
    def _any_spelling_compatibility(cls, value: Any) -> Any:
        return Mode.parse(value) if isinstance(value, str) else value


class GroupView(BaseModel):
    name: str
    format: SchemaFormat
    compatibility: str  # the Azure name: Backward, FullTransitive ...
    compatibility_in_azure: bool
    schemas: int
    versions: int

    @classmethod
    def of(cls, usage: GroupUsage) -> GroupView:
        group = usage.group
        return cls(
            name=group.name,
            format=group.format,
            compatibility=group.compatibility.azure_name,
            compatibility_in_azure=group.compatibility.in_azure,
            schemas=usage.schemas,
            versions=usage.versions,
        )


class GroupList(BaseModel):
    groups: list[GroupView]


def admin_router(store: SchemaStore) -> APIRouter:
    router = APIRouter(prefix=PREFIX)

    @router.get("/groups")
    def list_groups() -> GroupList:
        return GroupList(groups=[GroupView.of(usage) for usage in store.list_groups()])

    @router.get("/groups/{name}")
    def get_group(name: str) -> GroupView:
        return _view(store, name)

    @router.put("/groups/{name}")
    def put_group(name: str, spec: GroupSpec) -> GroupView:
        """Create the group, or change its compatibility mode (and its format while it holds no schemas)."""
        try:
            group = SchemaGroup(name=name, format=spec.format, compatibility=spec.compatibility)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        return _view(store, store.put_group(group).name)

    return router


def _view(store: SchemaStore, name: str) -> GroupView:
    for usage in store.list_groups():
        if usage.group.name.lower() == name.lower():
            return GroupView.of(usage)
    raise NotFoundError(f"Schema group {name} does not exist.")
