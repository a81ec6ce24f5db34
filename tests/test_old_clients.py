"""An older Kafka client against the local broker: kcat built on librdkafka 2.0.x, as Debian bookworm ships it.

"Existing Kafka apps publish unchanged" includes apps on a distribution's librdkafka, which lags the
confluent-kafka wheels by years (bookworm: kcat 1.7.1 on librdkafka 2.0.2). kcat produces and consumes
plain records, alone and in a consumer group, produces Azure-format Avro records our consumer decodes,
and reads what our producer API wrote.

Tansu 0.6 answers ApiVersions v3 in a way librdkafka 2.0.2 cannot parse ("ApiVersionRequest failed:
Local: Read underflow"), and ``api.version.request=false`` does not help (Produce and ListOffsets at the
0.9 fallback versions fail too), so on Tansu these tests check that exact failure and xfail.

Skipped when kcat is not installed (Debian: ``apt-get install kcat``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.provisioning import provision
from hubstream.settings import Settings
from schemas.contracts import Catalog, Contract
from schemas.natural import NaturalJson
from schemas.registry import SchemaRegistry
from schemas.serde import AvroSerde
from tests.fixtures.broker import LocalKafka, unique
from tests.fixtures.events import chat_event
from tests.fixtures.registry import RegistryEmulator
from tests.fixtures.services import CHAT, Collected, make_settings, producer_api, running_worker, write_catalog

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(
        KCAT is None,
        reason="kcat is not installed (Debian: apt-get install kcat, librdkafka 2.0.2 on bookworm): "
        "the librdkafka 2.0.x client check needs it",
    ),
]
TANSU_CLUSTER_ID = "tansu_cluster"
TANSU_APIVERSION_FAILURE = "ApiVersionRequest failed: Local: Read underflow"


def kcat(*args: str, stdin: bytes = b"", timeout_s: float = 60) -> subprocess.CompletedProcess[bytes]:
    assert KCAT is not None
    argv = [KCAT, *args, "-X", "broker.address.family=v4"]
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout_s, check=False)


def kcat_ok(*args: str, stdin: bytes = b"", timeout_s: float = 60) -> bytes:
    result = kcat(*args, stdin=stdin, timeout_s=timeout_s)
    assert result.returncode == 0, f"kcat {' '.join(args)} exited {result.returncode}:\n{result.stderr.decode()}"
    return result.stdout


def librdkafka_version() -> str:
    assert KCAT is not None
    banner = subprocess.run([KCAT, "-V"], capture_output=True, text=True, timeout=30, check=False).stdout
    found = re.search(r"librdkafka ([0-9][^ )]*)", banner)
    return found.group(1) if found else f"unknown ({banner.strip()!r})"


@pytest.fixture(scope="module")
def tansu_refusal(kafka_broker: LocalKafka) -> str | None:
    """None when the session broker is not Tansu; else how kcat fails against it (checked to be the known way)."""
    cluster_id = str(kafka_broker.admin.list_topics(timeout=15).cluster_id)
    if cluster_id != TANSU_CLUSTER_ID:
        return None
    result = kcat("-b", kafka_broker.bootstrap_servers, "-L", "-m", "5", timeout_s=30)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode != 0 and TANSU_APIVERSION_FAILURE in stderr, stderr
    return f"Tansu rejects librdkafka {librdkafka_version()}: {TANSU_APIVERSION_FAILURE}"


@pytest.fixture
def old_client_broker(kafka_broker: LocalKafka, tansu_refusal: str | None) -> LocalKafka:
    """The session broker, which kcat can talk to; on Tansu the test xfails with the known ApiVersions failure."""
    if tansu_refusal is not None:
        pytest.xfail(tansu_refusal)
    return kafka_broker


def test_kcat_produces_and_consumes_alone_and_in_a_group(old_client_broker: LocalKafka) -> None:
    broker = old_client_broker.bootstrap_servers
    topic = old_client_broker.create_topic("kcat", partitions=3)
    sent = {(f"key-{i % 3}", f"value {i} — é ü 한") for i in range(9)}
    lines = "".join(f"{key}\t{value}\n" for key, value in sorted(sent)).encode()
    kcat_ok("-b", broker, "-P", "-t", topic, "-K", "\t", "-H", "source=kcat", stdin=lines)

    fmt = "%p\t%o\t%k\t%s\t%h\n"
    read = kcat_ok("-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt).decode()
    rows = [line.split("\t") for line in read.splitlines()]
    assert {(key, value) for _, _, key, value, _ in rows} == sent
    assert all(headers == "source=kcat" for *_, headers in rows)
    # one key, one partition
    assert all(len({p for p, _, k, _, _ in rows if k == key}) == 1 for key in {k for _, _, k, _, _ in rows})

    group = unique("kcat-group")
    in_group = kcat_ok("-b", broker, "-G", group, topic, "-o", "beginning", "-e", "-q", "-f", fmt).decode()
    assert sorted(in_group.splitlines()) == sorted(read.splitlines())
    ends: dict[int, int] = {}
    for partition, offset, *_ in rows:
        ends[int(partition)] = max(ends.get(int(partition), 0), int(offset) + 1)
    committed = old_client_broker.committed(group, topic, 3)
    assert {p: o for p, o in committed.items() if p in ends} == ends


@pytest.fixture
def chat_stack(old_client_broker: LocalKafka, registry_emulator: RegistryEmulator, tmp_path: Path) -> Settings:
    topic = old_client_broker.create_topic("kcat-chat", partitions=3)
    group = registry_emulator.create_group(prefix="kcat")
    settings = make_settings(
        old_client_broker, registry_emulator, write_catalog(tmp_path, {topic: CHAT}), registry={"group": group}
    )
    provision(settings)
    return settings


def _contract(settings: Settings) -> tuple[str, Contract]:
    catalog = Catalog.from_settings(settings)
    [topic] = catalog.topics
    return topic, catalog.contract_for(topic)


def test_our_consumer_decodes_azure_format_records_kcat_produced(
    chat_stack: Settings, old_client_broker: LocalKafka, tmp_path: Path
) -> None:
    topic, contract = _contract(chat_stack)
    natural = NaturalJson(contract.schema)
    events = [chat_event("conv-kcat-a", 0), chat_event("conv-kcat-b", 0, final=True), chat_event("conv-kcat-a", 1)]
    with SchemaRegistry.from_settings(chat_stack) as registry:
        serde = AvroSerde(registry)
        for i, event in enumerate(events):
            encoded = serde.encode(natural.from_json(event), contract)
            body = tmp_path / f"event-{i}.avro"  # a file argument is one message, bytes as they are
            body.write_bytes(encoded.value)
            [(name, value)] = encoded.headers
            header = f"{name}={value.decode()}"
            kcat_ok(
                "-b", old_client_broker.bootstrap_servers, "-P", "-t", topic, "-k", event["conversationId"],
                "-H", header, str(body),
            )  # fmt: skip
    collected = Collected()
    with running_worker(chat_stack, unique("kcat-in"), [topic], collected):
        received = collected.wait_for(len(events))
    assert sorted((e.value["eventId"], e.value) for e in received) == sorted(
        (event["eventId"], natural.from_json(event)) for event in events
    )
    assert all(e.key_text == e.value["conversationId"] for e in received)


def test_kcat_reads_what_our_producer_api_wrote(chat_stack: Settings, old_client_broker: LocalKafka) -> None:
    topic, contract = _contract(chat_stack)
    events = [chat_event("conv-api-a", 0), chat_event("conv-api-b", 0)]
    with producer_api(chat_stack) as url:
        response = httpx.post(f"{url}/v1/topics/{topic}/events:batch", json={"events": events}, timeout=30)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    fmt = "%p\t%o\t%k\t%h\t%S\n"  # %S: the value's size; the Avro body itself is binary
    read = kcat_ok(
        "-b", old_client_broker.bootstrap_servers, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt
    )
    rows = {(int(p), int(o)): (k, h, int(s)) for p, o, k, h, s in _tsv(read.decode())}
    natural = NaturalJson(contract.schema)
    with SchemaRegistry.from_settings(chat_stack) as registry:
        serde = AvroSerde(registry)
        for item, event in zip(results, events, strict=True):
            key, headers, size = rows[(item["partition"], item["offset"])]
            assert key == event["conversationId"]
            assert headers == f"content-type=avro/binary+{item['schemaId']}"
            assert size == len(serde.encode(natural.from_json(event), contract).value)


def _tsv(text: str) -> Sequence[list[str]]:
    return [line.split("\t") for line in text.splitlines() if line]


def test_the_kcat_used_is_librdkafka_2_0_era() -> None:
    """Which client the tests above proved (kcat -V): skipped, saying so, when kcat is built on another librdkafka."""
    version = librdkafka_version()
    if not version.startswith("2.0."):
        pytest.skip(
            f"kcat here is built on librdkafka {version}; the old-client check is about 2.0.x (Debian bookworm)"
        )
