"""Where the local Apache Kafka broker's jars and JVM come from: Maven Central through ``mvn``, once, and PATH.

``devstack/kafka/pom.xml`` is resolved into ``~/.cache/hubstream/kafka-<version>/libs``
(``mvn dependency:copy-dependencies``); later starts need no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from hubstream.errors import JavaNotFoundError, KafkaJarsError
from hubstream.files import locked

# 4.1.2, not 4.1.1: 4.1.1's default OAUTHBEARER validator accepts any well-formed JWT
KAFKA_VERSION = "4.1.2"
MIN_JAVA = 17
POM_FILE = Path(__file__).parent / "kafka" / "pom.xml"
_RESOLVE_TIMEOUT_S = 900


def cache_root() -> Path:
    """``$HUBSTREAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/hubstream``, else ``~/.cache/hubstream``."""
    if explicit := os.environ.get("HUBSTREAM_CACHE_DIR"):
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hubstream"


def libs_dir(version: str = KAFKA_VERSION, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"kafka-{version}" / "libs"


def jars_cached(libs: Path, version: str = KAFKA_VERSION) -> bool:
    # resolve_jars renames a complete download into place, so the two marker jars mean all of them
    return (libs / f"kafka_2.13-{version}.jar").is_file() and any(libs.glob("log4j-slf4j-impl-*.jar"))


def resolve_jars(version: str = KAFKA_VERSION, root: Path | None = None) -> Path:
    """The broker's jar directory, resolved from Maven Central by ``mvn`` the first time; offline afterwards."""
    libs = libs_dir(version, root)
    if jars_cached(libs, version):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaJarsError(
            f"the Apache Kafka {version} jars are not in {libs} and Maven (mvn) is not on PATH: install Maven "
            "(e.g. `apt-get install maven`) so they can be fetched once, or use `--broker tansu`"
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    with locked(libs.parent / ".lock"):  # a second process waits for the first one's download
        if jars_cached(libs, version):
            return libs
        partial = libs.with_name("libs.partial")
        shutil.rmtree(partial, ignore_errors=True)
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM_FILE),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-Dkafka.version={version}",
            f"-DoutputDirectory={partial}",
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=_RESOLVE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise KafkaJarsError(
                f"Maven did not fetch the Apache Kafka {version} jars within {_RESOLVE_TIMEOUT_S} s; check the "
                "network or the proxy in ~/.m2/settings.xml, or use `--broker tansu`"
            ) from None
        if done.returncode != 0 or not jars_cached(partial, version):
            output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise KafkaJarsError(
                f"Maven could not fetch the Apache Kafka {version} jars (`{' '.join(argv)}` exited with "
                f"{done.returncode}); check the network or ~/.m2/settings.xml and retry, or use `--broker tansu`:\n"
                f"{output}"
            )
        os.replace(partial, libs)
    return libs


def java_major_version(java: str) -> int | None:
    """The major version of a ``java`` binary (``1.8`` counts as 8), or None when it does not run."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major


def find_java() -> str:
    """The ``java`` on PATH, if it is Java 17 or newer."""
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            f"Apache Kafka needs Java {MIN_JAVA} or newer and there is no `java` on PATH: install a JDK "
            "(e.g. `apt-get install openjdk-17-jre-headless`) or use `--broker tansu`"
        )
    major = java_major_version(java)
    if major is None or major < MIN_JAVA:
        found = f"Java {major}" if major else "a java that does not report its version"
        raise JavaNotFoundError(
            f"Apache Kafka needs Java {MIN_JAVA} or newer; {java} is {found}: put a newer JDK first on PATH "
            "or use `--broker tansu`"
        )
    return java


def unavailable_reason(version: str = KAFKA_VERSION) -> str | None:
    """None when the local Apache Kafka can run here; otherwise why not, in one line."""
    try:
        find_java()
    except JavaNotFoundError as exc:
        return str(exc).split(":")[0]
    libs = libs_dir(version)
    if not jars_cached(libs, version) and shutil.which("mvn") is None:
        return f"the Apache Kafka {version} jars are not in {libs} and Maven (mvn) is not on PATH to fetch them"
    return None
