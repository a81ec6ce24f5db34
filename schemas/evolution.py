"""Operations on the contracts as a whole: their registered history, a registration plan, compatibility checks.

The CLI (``hubstream schemas``) is a thin shell over these functions. A contract is compared either with
every version registered under its name in the schema group, or with the same file at a git ref.

    Status        what registering the contract would do
    ------        ----------------------------------------
    unchanged     its text is the latest version's: registering returns that version
    new version   the name exists with other text: registering adds a version
    new schema    the name is not registered (or the file did not exist at the ref)
"""

from __future__ import annotations

import difflib
import json
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from hubstream.errors import ContractError, RegistryError
from hubstream.settings import Settings
from schemas.compatibility import Finding, Mode, check_compatibility
from schemas.contracts import Contract
from schemas.registry import SchemaRegistry

# Azure's default compatibility for a new schema group, assumed when the group's mode cannot be read
DEFAULT_MODE = Mode.BACKWARD


class Status(StrEnum):
    UNCHANGED = "unchanged"
    NEW_VERSION = "new version"
    NEW_SCHEMA = "new schema"


@dataclass(frozen=True)
class RegisteredVersion:
    version: int
    text: str


@dataclass(frozen=True)
class GroupInfo:
    """What the local emulator's admin API says about a schema group."""

    name: str
    mode: Mode
    schemas: int
    versions: int


@dataclass(frozen=True)
class ContractCheck:
    """One contract compared with what came before it (``previous``, oldest first)."""

    name: str
    path: str
    status: Status
    previous_versions: list[int]
    findings: list[Finding] = field(default_factory=list)

    @property
    def compatible(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "status": self.status.value,
            "previous_versions": self.previous_versions,
            "compatible": self.compatible,
            "findings": [{"path": f.path, "rule": f.rule, "message": f.message} for f in self.findings],
        }


@dataclass(frozen=True)
class QuotaUsage:
    limit: int
    current: int
    added: int

    @property
    def after(self) -> int:
        return self.current + self.added

    @property
    def exceeded(self) -> bool:
        return self.after > self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "current": self.current,
            "added": self.added,
            "after": self.after,
            "exceeded": self.exceeded,
        }


# registry side


def registered_versions(registry: SchemaRegistry, name: str) -> list[RegisteredVersion]:
    """Every version of ``name`` in the registry's group, oldest first; ``[]`` if the name is not registered."""
    group = registry.group
    numbers = registry.call(
        lambda: _or_none(lambda: list(registry.client._generated_client.list_schema_versions(group, name))),
        f"list the versions of {name} in group {group!r}",
    )
    return [RegisteredVersion(n, schema_version(registry, name, n)) for n in sorted(numbers or [])]


def schema_version(registry: SchemaRegistry, name: str, version: int) -> str:
    """The text of one version; ``RegistryError`` naming the versions that exist if it does not."""
    group = registry.group
    schema = registry.call(
        lambda: _or_none(lambda: registry.client.get_schema(group_name=group, name=name, version=version)),
        f"fetch version {version} of {name} in group {group!r}",
    )
    if schema is None:
        raise RegistryError(f"schema {name} has no version {version} in group {group!r}")
    return str(schema.definition)


def _or_none(request: Any) -> Any:
    try:
        return request()
    except ResourceNotFoundError:
        return None


def emulator_group(settings: Settings) -> GroupInfo | None:
    """The group's mode and usage from the local emulator's admin API; ``None`` when that is unavailable."""
    from schemas.emulator.admin_client import EmulatorAdminClient

    reg = settings.registry
    if settings.profile != "local" or not reg.namespace or reg.ca_file is None or not reg.ca_file.exists():
        return None
    try:
        with EmulatorAdminClient(f"https://{reg.namespace}", reg.ca_file, token=reg.token.get_secret_value()) as admin:
            groups = admin.list_groups()
    except RegistryError:
        return None
    for group in groups:
        if str(group.get("name", "")).lower() == reg.group.lower():
            return GroupInfo(group["name"], Mode.parse(group["compatibility"]), group["schemas"], group["versions"])
    return None


def plan(contract: Contract, versions: Sequence[RegisteredVersion]) -> Status:
    if not versions:
        return Status.NEW_SCHEMA
    return Status.UNCHANGED if versions[-1].text == contract.text else Status.NEW_VERSION


def check_against_registry(
    registry: SchemaRegistry, contracts: Iterable[Contract], mode: Mode
) -> tuple[list[ContractCheck], dict[str, list[RegisteredVersion]]]:
    """Check each contract against its registered versions; also returns those versions by name."""
    checks: list[ContractCheck] = []
    history: dict[str, list[RegisteredVersion]] = {}
    for contract in contracts:
        versions = history[contract.name] = registered_versions(registry, contract.name)
        status = plan(contract, versions)
        findings = (
            [] if status is Status.UNCHANGED else check_compatibility(contract.text, [v.text for v in versions], mode)
        )
        checks.append(ContractCheck(contract.name, _path(contract), status, [v.version for v in versions], findings))
    return checks, history


def quota_usage(
    limit: int, checks: Sequence[ContractCheck], history: dict[str, list[RegisteredVersion]], group: GroupInfo | None
) -> QuotaUsage:
    """Versions in the group now (the whole group if the emulator says, else the contracts') and after registering."""
    current = group.versions if group is not None else sum(len(v) for v in history.values())
    added = sum(1 for check in checks if check.status is not Status.UNCHANGED)
    return QuotaUsage(limit, current, added)


# git side


def check_against_git(contracts: Iterable[Contract], ref: str, mode: Mode) -> list[ContractCheck]:
    """Check each contract against the same file at git ``ref``; a file absent there is a new schema."""
    checks: list[ContractCheck] = []
    for contract in contracts:
        if contract.path is None:
            raise ContractError(f"contract {contract.name} has no file to look up at git ref {ref!r}")
        old_text = file_at_ref(contract.path, ref)
        if old_text is None:
            checks.append(ContractCheck(contract.name, _path(contract), Status.NEW_SCHEMA, []))
            continue
        old = Contract.from_text(old_text, contract.path)
        status = Status.UNCHANGED if old.text == contract.text else Status.NEW_VERSION
        findings = [] if status is Status.UNCHANGED else check_compatibility(contract.text, [old.text], mode)
        checks.append(ContractCheck(contract.name, _path(contract), status, [], findings))
    return checks


def file_at_ref(path: Path, ref: str) -> str | None:
    """``git show REF:path`` run in the file's directory; ``None`` if the file did not exist at ``ref``."""
    cwd = path.resolve().parent
    verify = _git(cwd, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if verify.returncode != 0:
        raise ContractError(f"{ref!r} is not a commit in the git repository holding {path} ({verify.stderr.strip()})")
    shown = _git(cwd, "show", f"{ref}:./{path.name}")
    if shown.returncode != 0:
        return None
    return shown.stdout


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, encoding="utf-8", check=False)
    except FileNotFoundError:
        raise ContractError("--against git:REF needs the git command on PATH") from None


# presentation helpers shared by the commands


def pretty(text: str) -> str:
    return json.dumps(json.loads(text), indent=2, ensure_ascii=False)


def diff_versions(name: str, a: RegisteredVersion, b: RegisteredVersion) -> tuple[str, list[Finding], list[Finding]]:
    """Unified diff of two versions (pretty JSON), then why B cannot read A's data and why A cannot read B's."""
    lines = difflib.unified_diff(
        pretty(a.text).splitlines(keepends=True),
        pretty(b.text).splitlines(keepends=True),
        fromfile=f"{name} v{a.version}",
        tofile=f"{name} v{b.version}",
    )
    backward = check_compatibility(b.text, [a.text], Mode.BACKWARD)
    forward = check_compatibility(b.text, [a.text], Mode.FORWARD)
    return "".join(lines), backward, forward


def _path(contract: Contract) -> str:
    return str(contract.path) if contract.path is not None else "-"
