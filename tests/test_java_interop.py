"""Microsoft's Java serializer for Azure Schema Registry against our broker, emulator and contracts.

``tests/java/interop/Interop.java`` is a Java Kafka application configured as Microsoft documents it
(``KafkaAvroSerializer`` / ``KafkaAvroDeserializer`` from ``com.microsoft.azure:azure-schemaregistry-kafka-avro``,
unchanged, ``auto.register.schemas=false``). Its classpath is resolved by Maven from
``tests/java/interop/pom.xml`` and the program compiled once, into
``~/.cache/hubstream/java-interop-<hash of pom, source and javac>/``; later runs only start a JVM.
Contracts are registered by ``devstack.provisioning.provision``, what ``hubstream provision`` runs.

The serializer looks a schema up by ``Schema.toString()`` of the schema it parsed, which is not the text
provisioning registered (a field's ``doc`` comes before its ``default`` whatever the file says); the
emulator's get-id finds it because it compares JSON values, as Azure does (``schemas/emulator/content.py``).

These tests skip when java, javac, mvn or keytool is missing, and fail instead under CI, which has them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError

from devstack.provisioning import Provisioned, provision
from hubstream.files import locked
from hubstream.settings import Settings
from schemas.contracts import Catalog, Contract, load_contracts
from schemas.emulator.content import json_value_key
from schemas.natural import NaturalJson
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.registry import RegistryEmulator
from tests.fixtures.services import CHAT, Collected, make_settings, producer_api, running_worker, write_catalog

pytestmark = pytest.mark.broker

REPO_ROOT = Path(__file__).resolve().parents[1]
JAVA_DIR = REPO_ROOT / "tests" / "java" / "interop"
TOOLS = ("java", "javac", "mvn", "keytool")
TRUST_PASSWORD = "changeit"
JVM_FLAGS = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class JavaApp:
    """The built Java program, and the JVM flags that make it trust the emulator's CA."""

    cache_dir: Path
    classpath: str
    trust_store: Path

    def run(self, command: str, *options: str, stdin: str = "", timeout_s: float = 120) -> list[str]:
        """Run one command; its stdout lines. A non-zero exit fails the test with the JVM's stderr."""
        result = self.attempt(command, *options, stdin=stdin, timeout_s=timeout_s)
        if result.returncode != 0:
            pytest.fail(f"java Interop {command} exited {result.returncode}:\n{result.stderr[-6000:]}")
        return result.stdout.splitlines()

    def attempt(
        self, command: str, *options: str, stdin: str = "", timeout_s: float = 120
    ) -> subprocess.CompletedProcess[str]:
        trust = [
            f"-Djavax.net.ssl.trustStore={self.trust_store}",
            f"-Djavax.net.ssl.trustStorePassword={TRUST_PASSWORD}",
            "-Djavax.net.ssl.trustStoreType=PKCS12",
        ]
        argv = ["java", *JVM_FLAGS, *trust, "-cp", self.classpath, "Interop", command, *options]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.fixture(scope="session")
def java_app(registry_emulator: RegistryEmulator, tmp_path_factory: pytest.TempPathFactory) -> JavaApp:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        reason = f"Java interop needs a JDK and Maven: {', '.join(missing)} not on PATH"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must have them)")
        pytest.skip(reason)
    cache_dir = build_java_app(cache_root())
    trust_store = tmp_path_factory.mktemp("java") / "trust.p12"
    keytool = ["keytool", "-importcert", "-noprompt", "-alias", "hubstream-local-ca"]
    keytool += ["-file", str(registry_emulator.ca_file), "-keystore", str(trust_store)]
    keytool += ["-storetype", "PKCS12", "-storepass", TRUST_PASSWORD]
    subprocess.run(keytool, check=True, capture_output=True, timeout=60)
    classpath = f"{cache_dir / 'classes'}{os.pathsep}{(cache_dir / 'classpath.txt').read_text().strip()}"
    return JavaApp(cache_dir, classpath, trust_store)


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hubstream"


def build_java_app(root: Path) -> Path:
    """``<root>/java-interop-<hash>/``: ``classpath.txt`` (Maven's runtime classpath) and ``classes/``.

    Built once per pom, source and javac version, under a lock (parallel sessions wait for one build);
    rebuilt when a jar it lists is gone (a cleaned ~/.m2).
    """
    javac = subprocess.run(["javac", "-version"], capture_output=True, text=True, check=True, timeout=60)
    digest = hashlib.sha256()
    for part in ((JAVA_DIR / "pom.xml").read_bytes(), (JAVA_DIR / "Interop.java").read_bytes(), javac.stdout.encode()):
        digest.update(hashlib.sha256(part).digest())
    target = root / f"java-interop-{digest.hexdigest()[:16]}"
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f"{target.name}.lock"):
        if _usable(target):
            return target
        shutil.rmtree(target, ignore_errors=True)
        work = root / f".{target.name}.{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        (work / "classes").mkdir(parents=True)
        started = time.monotonic()
        maven = ["mvn", "-q", "-B", "-f", str(JAVA_DIR / "pom.xml"), "dependency:build-classpath"]
        _checked([*maven, f"-Dmdep.outputFile={work / 'classpath.txt'}", "-Dmdep.includeScope=runtime"], timeout_s=900)
        resolved = time.monotonic()
        classpath = (work / "classpath.txt").read_text().strip()
        _checked(["javac", "-d", str(work / "classes"), "-cp", classpath, str(JAVA_DIR / "Interop.java")])
        timings = {"maven_s": round(resolved - started, 1), "javac_s": round(time.monotonic() - resolved, 1)}
        (work / "build.json").write_text(json.dumps(timings) + "\n")
        work.rename(target)
    return target


def _usable(target: Path) -> bool:
    classpath = target / "classpath.txt"
    if not (classpath.exists() and (target / "classes" / "Interop.class").exists()):
        return False
    return all(Path(jar).exists() for jar in classpath.read_text().strip().split(os.pathsep))


def _checked(argv: Sequence[str], timeout_s: float = 300) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        pytest.fail(f"{argv[0]} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


# the stack the Java program talks to: a fresh topic and a fresh schema group, provisioned


@dataclass(frozen=True)
class Stack:
    settings: Settings
    topic: str
    group: str
    provisioned: Provisioned
    contract: Contract

    @property
    def schema_id(self) -> str:
        return self.provisioned.schema_ids[CHAT]

    def java_options(self, broker: LocalKafka, emulator: RegistryEmulator) -> list[str]:
        return ["--bootstrap", broker.bootstrap_servers, "--topic", self.topic, "--registry", emulator.namespace]


@pytest.fixture
def stack(kafka_broker: LocalKafka, registry_emulator: RegistryEmulator, tmp_path: Path) -> Stack:
    topic = f"chat-java-{uuid.uuid4().hex[:10]}"
    group = registry_emulator.create_group(prefix="java")
    catalog_file = write_catalog(tmp_path, {topic: CHAT})
    settings = make_settings(kafka_broker, registry_emulator, catalog_file, registry={"group": group})
    provisioned = provision(settings)  # creates the topic (and its .dlq) and registers the contracts
    return Stack(settings, topic, group, provisioned, Catalog.from_settings(settings).contract_for(topic))


def sample_events() -> list[dict[str, Any]]:
    """Natural JSON, as the producer API takes it: two conversations, non-ASCII text, an empty map, a final chunk."""
    return [
        chat_event("conv-java-a", 0, content="안녕하세요 — première réponse", metadata={}),
        chat_event("conv-java-b", 0, metadata={"model": "gpt", "x-trace": "t-1"}),
        chat_event("conv-java-a", 1, content="", createdAt="2026-03-01T00:00:00Z"),
        chat_event("conv-java-b", 1, final=True, createdAt="1999-12-31T23:59:59.999Z"),
    ]


def avro_json(natural: NaturalJson, event: dict[str, Any]) -> dict[str, Any]:
    """The event in Avro's JSON encoding (timestamp-millis as epoch millis), what Java's JsonDecoder reads."""
    datum = natural.from_json(event)
    return {**datum, "createdAt": (datum["createdAt"] - EPOCH) // timedelta(milliseconds=1)}


# Java writes, we read


def test_java_serializer_writes_records_our_consumer_decodes_equal(
    java_app: JavaApp, stack: Stack, kafka_broker: LocalKafka, registry_emulator: RegistryEmulator
) -> None:
    events = sample_events()
    natural = NaturalJson(stack.contract.schema)
    lines = "".join(json.dumps(avro_json(natural, event), ensure_ascii=False) + "\n" for event in events)
    options = [*stack.java_options(kafka_broker, registry_emulator), "--group", stack.group]
    options += ["--schema", str(stack.contract.path), "--key-field", "conversationId"]
    output = java_app.run("produce", *options, stdin=lines)
    sent = [(int(line.split()[1]), int(line.split()[2])) for line in output if line.startswith("SENT ")]
    assert len(sent) == len(events), output

    collected = Collected()
    with running_worker(stack.settings, unique("java-in"), [stack.topic], collected):
        received = collected.wait_for(len(events))
    by_position = {(event.partition, event.offset): event for event in received}
    assert sorted(by_position) == sorted(sent)
    for position, event in zip(sent, events, strict=True):
        decoded = by_position[position]
        assert decoded.value == natural.from_json(event)
        assert decoded.key == event["conversationId"].encode()
        # the provisioned version: auto.register.schemas=false found it, and registered nothing new
        assert decoded.schema_id == stack.schema_id and decoded.schema_name == CHAT
        assert dict(decoded.headers)["content-type"] == f"avro/binary+{stack.schema_id}".encode()
    with registry_emulator.client() as client:
        assert list(client._generated_client.list_schema_versions(stack.group, CHAT)) == [1]


def test_java_serializer_without_the_contract_registered_fails_with_not_found(
    java_app: JavaApp, kafka_broker: LocalKafka, registry_emulator: RegistryEmulator
) -> None:
    empty_group = registry_emulator.create_group(prefix="java-empty")
    event = avro_json(NaturalJson(load_contracts(REPO_ROOT / "schemas" / "avro")[CHAT].schema), chat_event())
    options = ["--bootstrap", kafka_broker.bootstrap_servers, "--topic", kafka_broker.create_topic("java-none", 1)]
    options += ["--registry", registry_emulator.namespace, "--group", empty_group, "--key-field", "conversationId"]
    options += ["--schema", str(REPO_ROOT / "schemas" / "avro" / f"{CHAT}.avsc")]
    result = java_app.attempt("produce", *options, stdin=json.dumps(event) + "\n")
    assert result.returncode != 0
    assert "ItemNotFound" in result.stderr or "404" in result.stderr, result.stderr[-3000:]


# we write, Java reads


def test_java_deserializer_reads_what_our_producer_api_posted_equal(
    java_app: JavaApp, stack: Stack, kafka_broker: LocalKafka, registry_emulator: RegistryEmulator
) -> None:
    events = sample_events()
    with producer_api(stack.settings) as url:
        response = httpx.post(f"{url}/v1/topics/{stack.topic}/events:batch", json={"events": events}, timeout=30)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(item["ok"] and item["schemaId"] == stack.schema_id for item in results), results

    options = [*stack.java_options(kafka_broker, registry_emulator), "--count", str(len(events)), "--timeout-s", "60"]
    output = java_app.run("consume", *options)
    records = [json.loads(line.removeprefix("RECORD ")) for line in output if line.startswith("RECORD ")]
    by_position = {(r["partition"], r["offset"]): r for r in records}
    assert len(by_position) == len(events), output
    natural = NaturalJson(stack.contract.schema)
    for item, event in zip(results, events, strict=True):
        record = by_position[(item["partition"], item["offset"])]
        assert record["value"] == avro_json(natural, event)
        assert record["key"] == event["conversationId"]
        assert record["contentType"] == f"avro/binary+{stack.schema_id}"


# the text the Java serializer looks schemas up by, for every contract


def test_every_contract_is_found_by_the_text_java_looks_it_up_by(
    java_app: JavaApp, registry_emulator: RegistryEmulator
) -> None:
    group = registry_emulator.create_group(prefix="java-text")
    contracts = load_contracts(REPO_ROOT / "schemas" / "avro")
    with registry_emulator.client() as client:
        for contract in contracts.values():
            assert contract.path is not None
            [java_text] = java_app.run("schema-text", "--schema", str(contract.path))
            # a contract whose file Avro rewrites beyond member order (a redundant nested namespace,
            # {"type": "string"} for "string", "order": "ascending") would not be found: keep files plain
            assert json_value_key(java_text) == json_value_key(contract.text), (contract.name, java_text)
            registered = client.register_schema(group, contract.name, contract.text, "Avro")
            found = client.get_schema_properties(group, contract.name, java_text, "Avro")
            assert (found.id, found.version) == (registered.id, registered.version)
            # get-by-id still hands back the registered text, byte for byte
            assert client.get_schema(registered.id).definition == contract.text


# the get-id lookup the above relies on (schemas/emulator/content.py), through the official Python SDK


def test_get_id_ignores_whitespace_and_member_order_as_azure_does(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    client = registry_emulator.client()
    registered_text = (
        '{"namespace":"example.avro","type":"record","name":"User","fields":[{"name":"name","type":"string"}]}'
    )
    registered = client.register_schema(registry_group, "example.avro.User", registered_text, "Avro")
    # what Python avro's str(schema) sends for it, as in Azure's own recorded test against the service
    python_avro = '{"type": "record", "name": "User", "namespace": "example.avro", '
    python_avro += '"fields": [{"type": "string", "name": "name"}]}'
    pretty = json.dumps(json.loads(registered_text), indent=2)
    for text in (registered_text, python_avro, pretty):
        found = client.get_schema_properties(registry_group, "example.avro.User", text, "Avro")
        assert (found.id, found.version) == (registered.id, 1)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(lambda s: {**s, "doc": "a doc the registered text lacks"}, id="doc-added"),
        pytest.param(lambda s: {**s, "fields": s["fields"][::-1]}, id="fields-reordered"),
        pytest.param(lambda s: {**s, "fields": [{**s["fields"][0], "default": 1}, s["fields"][1]]}, id="default-1"),
    ],
)
def test_get_id_does_not_match_a_different_json_value(
    registry_emulator: RegistryEmulator, registry_group: str, changed: Any
) -> None:
    client = registry_emulator.client()
    schema = {
        "type": "record",
        "name": "Flags",
        "namespace": "t",
        "fields": [{"name": "on", "type": "boolean", "default": True}, {"name": "n", "type": "int"}],
    }
    client.register_schema(registry_group, "t.Flags", json.dumps(schema), "Avro")
    with pytest.raises(ResourceNotFoundError):
        client.get_schema_properties(registry_group, "t.Flags", json.dumps(changed(schema)), "Avro")


def test_get_id_answers_with_the_newest_version_of_that_content(
    registry_emulator: RegistryEmulator, registry_group: str
) -> None:
    client = registry_emulator.client()
    a = {"type": "record", "name": "V", "fields": [{"name": "x", "type": "int"}]}
    b = {
        "type": "record",
        "name": "V",
        "fields": [{"name": "x", "type": "int"}, {"name": "y", "type": "int", "default": 0}],
    }
    client.register_schema(registry_group, "V", json.dumps(a), "Avro")
    client.register_schema(registry_group, "V", json.dumps(b), "Avro")
    v3 = client.register_schema(registry_group, "V", json.dumps(a, indent=1), "Avro")  # a again, reformatted
    found = client.get_schema_properties(registry_group, "V", json.dumps(a, separators=(",", ":")), "Avro")
    assert (found.id, found.version) == (v3.id, 3)
