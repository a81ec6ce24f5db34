"""``hubstream schemas`` end to end: the CLI as a subprocess against the real registry emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hubstream.settings import PACKAGE_SCHEMAS_DIR
from tests.fixtures.registry import REPO_ROOT, RegistryEmulator

CHAT = "hubstream.chat.ChatResponse"
CHAT_FILE = f"{CHAT}.avsc"
MINUTES = "hubstream.meetings.MinutesFinalized"


@dataclass
class Cli:
    env: dict[str, str]
    contracts: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hubstream_cli", "schemas", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def json(self, *args: str, expect: int = 0) -> Any:
        result = self.run(*args, "--json")
        assert result.returncode == expect, result.stdout + result.stderr
        return json.loads(result.stdout)

    def edit(self, change: Any, file: str = CHAT_FILE) -> None:
        """Rewrite a contract: ``change`` gets the schema dict and edits it in place."""
        path = self.contracts / file
        schema = json.loads(path.read_text())
        change(schema)
        path.write_text(json.dumps(schema, indent=2))


def _cli(emulator: RegistryEmulator, group: str, tmp_path: Path) -> Cli:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    for source in sorted((PACKAGE_SCHEMAS_DIR / "avro").glob("*.avsc")):
        shutil.copy(source, contracts / source.name)
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUBSTREAM_")}
    env.update(
        {
            "HUBSTREAM_PROFILE": "local",
            "HUBSTREAM_STATE_DIR": str(tmp_path / "state"),
            "HUBSTREAM_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "HUBSTREAM_REGISTRY__NAMESPACE": emulator.namespace,
            "HUBSTREAM_REGISTRY__CA_FILE": str(emulator.ca_file),
            "HUBSTREAM_REGISTRY__GROUP": group,
            "HUBSTREAM_CONTRACTS_DIR": str(contracts),
            "COLUMNS": "250",  # rich wraps table cells at 80 columns otherwise
        }
    )
    return Cli(env, contracts)


@pytest.fixture
def cli(registry_emulator: RegistryEmulator, registry_group: str, tmp_path: Path) -> Cli:
    """A fresh Backward group and a private copy of the contracts."""
    return _cli(registry_emulator, registry_group, tmp_path)


def add_field(name: str, default: Any = None, with_default: bool = False) -> Any:
    def change(schema: dict[str, Any]) -> None:
        entry: dict[str, Any] = {"name": name, "type": "int"}
        if with_default:
            entry["default"] = default
        schema["fields"].append(entry)

    return change


def remove_field(name: str) -> Any:
    def change(schema: dict[str, Any]) -> None:
        schema["fields"] = [f for f in schema["fields"] if f["name"] != name]

    return change


def test_register_then_check_passes(cli: Cli) -> None:
    registered = cli.json("register")
    assert {row["status"] for row in registered["schemas"]} == {"new schema"}
    assert all(row["id"] and row["version"] == 1 for row in registered["schemas"])

    check = cli.run("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "compatible" in check.stdout

    result = cli.json("check")
    assert result["compatible"] is True and result["mode"] == "BACKWARD"
    assert {s["status"] for s in result["schemas"]} == {"unchanged"}

    again = cli.json("register")  # idempotent
    assert [(r["status"], r["version"]) for r in again["schemas"]] == [("unchanged", 1), ("unchanged", 1)]


def test_field_added_without_default_fails_backward(cli: Cli) -> None:
    cli.json("register")
    cli.edit(add_field("priority"))

    check = cli.run("check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "priority" in check.stdout
    assert "field-added-without-default" in check.stdout
    assert CHAT in check.stdout

    result = cli.json("check", expect=1)
    chat = next(s for s in result["schemas"] if s["name"] == CHAT)
    assert chat["status"] == "new version" and chat["previous_versions"] == [1]
    assert [f["rule"] for f in chat["findings"]] == ["field-added-without-default"]
    assert chat["findings"][0]["path"] == "ChatResponse.priority"


def test_group_mode_comes_from_the_emulator_and_mode_overrides_it(
    registry_emulator: RegistryEmulator, tmp_path: Path
) -> None:
    cli = _cli(registry_emulator, registry_emulator.create_group(compatibility="Forward"), tmp_path)
    cli.json("register")
    cli.edit(remove_field("content"))  # a field without default: old readers need it

    check = cli.run("check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "content" in check.stdout and "field-removed-without-default" in check.stdout
    assert cli.json("check", expect=1)["mode"] == "FORWARD"

    # removing a field is backward compatible: new readers ignore it in old data
    assert cli.run("check", "--mode", "backward").returncode == 0
    assert cli.json("check", "--mode", "FullTransitive", expect=1)["mode"] == "FULL_TRANSITIVE"


def test_transitive_mode_checks_every_registered_version(registry_emulator: RegistryEmulator, tmp_path: Path) -> None:
    cli = _cli(registry_emulator, registry_emulator.create_group(compatibility="None"), tmp_path)
    cli.json("register")
    cli.edit(remove_field("content"))
    cli.json("register")  # v2 without content (the group checks nothing)
    cli.edit(add_field("content", default=0, with_default=True))  # back as an int: v1 wrote strings

    assert cli.run("check", "--mode", "backward").returncode == 0  # against v2 only: a new field with default
    result = cli.json("check", "--mode", "backward_transitive", expect=1)
    chat = next(s for s in result["schemas"] if s["name"] == CHAT)
    assert chat["previous_versions"] == [1, 2]
    assert [f["rule"] for f in chat["findings"]] == ["type-mismatch"]
    assert chat["findings"][0]["message"].startswith("against version 1: field `content`")


def test_check_against_git_head(cli: Cli) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", str(cli.contracts)], check=True)
    subprocess.run([*git, "add", "."], cwd=cli.contracts, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "contracts"], cwd=cli.contracts, check=True)
    env = {**cli.env, "HUBSTREAM_REGISTRY__NAMESPACE": "127.0.0.1:1"}  # git needs no registry
    git_cli = Cli(env, cli.contracts)

    assert git_cli.run("check", "--against", "git:HEAD").returncode == 0
    cli.edit(add_field("priority"))
    (cli.contracts / "x.New.avsc").write_text(
        json.dumps({"type": "record", "name": "New", "namespace": "x", "fields": [{"name": "a", "type": "int"}]})
    )

    check = git_cli.run("check", "--against", "git:HEAD")
    assert check.returncode == 1, check.stdout + check.stderr
    assert "priority" in check.stdout
    result = git_cli.json("check", "--against", "git:HEAD", expect=1)
    statuses = {s["name"]: s["status"] for s in result["schemas"]}
    assert statuses == {CHAT: "new version", MINUTES: "unchanged", "x.New": "new schema"}
    # the default mode is BACKWARD; under FORWARD an added field is fine
    assert git_cli.run("check", "--against", "git:HEAD", "--mode", "forward").returncode == 0

    bad_ref = git_cli.run("check", "--against", "git:no-such-ref")
    assert bad_ref.returncode == 2 and "no-such-ref" in bad_ref.stderr


def test_dry_run_registers_nothing(cli: Cli) -> None:
    plan = cli.json("register", "--dry-run")
    assert plan["dry_run"] is True
    assert {(r["status"], r["id"]) for r in plan["schemas"]} == {("new schema", None)}
    assert cli.json("list")["schemas"] == {CHAT: [], MINUTES: []}

    cli.json("register")
    cli.edit(add_field("priority", default=0, with_default=True))
    plan = cli.json("register", "--dry-run")
    assert {r["name"]: (r["status"], r["version"]) for r in plan["schemas"]} == {
        CHAT: ("new version", 2),
        MINUTES: ("unchanged", 1),
    }
    text = cli.run("register", "--dry-run")
    assert text.returncode == 0 and "dry run" in text.stdout and "new version" in text.stdout
    assert cli.json("list")["schemas"] == {CHAT: [1], MINUTES: [1]}


def test_quota_warning(cli: Cli) -> None:
    cli.json("register")  # 2 versions in the group
    cli.edit(add_field("priority", default=0, with_default=True))

    within = cli.run("check", "--quota", "3")
    assert within.returncode == 0 and "over the quota" not in within.stderr
    over = cli.run("check", "--quota", "2")
    assert over.returncode == 0, over.stdout + over.stderr  # a warning, not a failure
    assert "warning" in over.stderr and "3 schema versions" in over.stderr
    quota = cli.json("check", "--quota", "2")["quota"]
    assert quota == {"limit": 2, "current": 2, "added": 1, "after": 3, "exceeded": True}


def test_list_show_and_diff(registry_emulator: RegistryEmulator, tmp_path: Path) -> None:
    cli = _cli(registry_emulator, registry_emulator.create_group(compatibility="None"), tmp_path)
    cli.json("register")
    cli.edit(remove_field("content"))
    cli.edit(add_field("priority"))
    cli.json("register")

    assert cli.json("list") == {"group": cli.env["HUBSTREAM_REGISTRY__GROUP"], "schemas": {CHAT: [1, 2], MINUTES: [1]}}
    listed = cli.run("list")
    assert listed.returncode == 0 and CHAT in listed.stdout and "1, 2" in listed.stdout

    latest = cli.run("show", CHAT)
    assert latest.returncode == 0, latest.stderr
    assert json.loads(latest.stdout) == json.loads((cli.contracts / CHAT_FILE).read_text())
    assert latest.stdout.startswith("{\n  ")  # pretty printed
    first = json.loads(cli.run("show", CHAT, "--version", "1").stdout)
    assert any(f["name"] == "content" for f in first["fields"])
    missing = cli.run("show", CHAT, "--version", "9")
    assert missing.returncode == 2 and "no version 9" in missing.stderr

    diff = cli.run("diff", CHAT, "1", "2")
    assert diff.returncode == 0, diff.stderr
    assert f"--- {CHAT} v1" in diff.stdout and f"+++ {CHAT} v2" in diff.stdout
    lines = diff.stdout.splitlines()
    assert any(line.startswith("-") and '"content"' in line for line in lines)
    assert any(line.startswith("+") and '"priority"' in line for line in lines)
    assert "field-added-without-default" in diff.stdout  # v2 cannot read v1 data: priority
    assert "field-removed-without-default" in diff.stdout  # v1 cannot read v2 data: content


def test_unknown_mode_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("check", "--mode", "sideways")
    assert result.returncode == 2 and "sideways" in result.stderr
