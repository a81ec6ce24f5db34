from kafka_consumer.offsets import PartitionOffsets


def test_commit_point_never_passes_a_record_in_flight() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12):
        offsets.started(offset)
    offsets.finished(11)
    offsets.finished(12)
    assert offsets.committable == 10  # 10 is still being processed
    offsets.finished(10)
    assert offsets.committable == 13


def test_gaps_in_offsets_need_no_special_case() -> None:
    offsets = PartitionOffsets()
    offsets.started(5)
    offsets.finished(5)
    offsets.started(9)  # 6-8 were transaction markers
    assert offsets.committable == 9
    offsets.finished(9)
    assert offsets.committable == 10


def test_nothing_to_commit_twice() -> None:
    offsets = PartitionOffsets()
    assert offsets.committable is None
    offsets.started(0)
    offsets.finished(0)
    assert offsets.committable == 1
    offsets.mark_committed(1)
    assert offsets.committable is None


def test_a_start_past_unread_records_is_the_commit_point_until_something_is_read() -> None:
    offsets = PartitionOffsets()
    offsets.start_at(40)
    assert offsets.committable == 40
    offsets.started(40)
    assert offsets.committable == 40
    offsets.finished(40)
    offsets.start_at(10)  # ignored once records were read
    assert offsets.committable == 41


def test_a_record_fetched_again_after_a_quick_reassignment_is_recognised() -> None:
    offsets = PartitionOffsets()
    offsets.started(3)
    offsets.finished(3)
    assert offsets.seen(3) and offsets.seen(2) and not offsets.seen(4)
    offsets.finished(3)  # a second report for the same record changes nothing
    assert offsets.committable == 4
