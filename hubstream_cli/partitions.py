"""`hubstream partitions`: a topic's partitions, their offsets and last records."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hubstream_cli.common import StateDirOption
from hubstream_cli.inspecting import (
    IntervalOption,
    JsonOption,
    TimesOption,
    WaitOption,
    WatchOption,
    cluster_from,
    show,
    stamp,
)
from kafka_consumer.admin.cluster import WAIT_S
from kafka_consumer.admin.partition_info import PartitionInfo, describe_partitions, text_or_none


def partitions(
    topic: Annotated[str, typer.Option("--topic", "-t", metavar="TOPIC", help="Topic (event hub) to describe")],
    as_json: JsonOption = False,
    watch: WatchOption = False,
    interval: IntervalOption = 2.0,
    times: TimesOption = None,
    wait: WaitOption = WAIT_S,
    state_dir: StateDirOption = None,
) -> None:
    """Per partition: earliest and latest offset, record count, and the last record's time and key.

    The last record is read by an assigned consumer (no group is joined or created). Records is the offset
    span (latest - earliest), exact unless the topic is compacted or transactional.
    """
    cluster = cluster_from(state_dir, wait)
    show(
        lambda: describe_partitions(cluster, topic),
        lambda infos: _table(topic, infos),
        (lambda infos: {"topic": topic, "partitions": [i.as_json() for i in infos]}) if as_json else None,
        watch=watch,
        interval=interval,
        times=times,
    )


def _table(topic: str, infos: list[PartitionInfo]) -> Table:
    total = sum(i.records for i in infos)
    table = Table(
        "partition",
        "earliest",
        "latest",
        "records",
        "last enqueued",
        "last key",
        title=f"{topic}: {len(infos)} partitions, {total} records",
    )
    for info in infos:
        table.add_row(
            str(info.partition),
            str(info.earliest),
            str(info.latest),
            str(info.records),
            stamp(info.last_timestamp),
            text_or_none(info.last_key) or "-",
        )
    return table
