"""`hubstream provision`: create the catalog's topics and register its contracts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from devstack.discovery import with_local_stack
from devstack.provisioning import provision as run_provision
from hubstream_cli.common import StateDirOption, console, load_settings


def provision(
    state_dir: StateDirOption = None,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions for topics the catalog gives no count")] = 3,
) -> None:
    """Create the catalog's topics and their dead-letter topics (not on Event Hubs), and register every contract."""
    result = run_provision(with_local_stack(load_settings(state_dir)), default_partitions=partitions)
    table = Table("topic", "partitions", "created")
    for topic, count in {**result.topics, **result.dead_letter_topics}.items():
        if not result.topics_created_here:
            created = "create it in Azure"
        else:
            created = "yes" if topic in result.created_topics else "existed"
        table.add_row(topic, str(count), created)
    console.print(table)
    schemas = Table("schema", "schema id")
    for name, schema_id in result.schema_ids.items():
        schemas.add_row(name, schema_id)
    console.print(schemas)
