import json
import logging

from hubstream.logs import JsonFormatter


def test_json_lines_carry_the_structured_fields() -> None:
    record = logging.LogRecord(
        "kafka_consumer.runtime", logging.INFO, __file__, 1, "member %s assigned %s", ("m-1", "t[0]"), None
    )
    record.event, record.member_id, record.partitions = "partitions_assigned", "m-1", ["t[0]"]
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "member m-1 assigned t[0]" and line["level"] == "info"
    assert line["event"] == "partitions_assigned" and line["member_id"] == "m-1" and line["partitions"] == ["t[0]"]
    assert "args" not in line and "levelno" not in line
