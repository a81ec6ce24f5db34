from kafka_consumer.commits import CommitPolicy, CommitSchedule


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


TP = ("t", 0)


def test_commits_on_the_interval_and_on_the_record_count_but_never_above_the_rate() -> None:
    clock = Clock()
    schedule = CommitSchedule(CommitPolicy(interval_s=1.0, every_records=10, max_per_second=2.0), clock)
    assert schedule.due(TP)  # never committed
    schedule.sent(TP)
    schedule.completed(TP, 50)  # a burst: far past the record count
    clock.now += 0.3
    assert not schedule.due(TP)  # the rate cap holds it back
    clock.now += 0.2
    assert schedule.due(TP)  # 0.5 s = 1 / max_per_second
    schedule.sent(TP)
    schedule.completed(TP, 3)
    clock.now += 0.6
    assert not schedule.due(TP)  # few records and the interval has not passed
    clock.now += 0.4
    assert schedule.due(TP)


def test_forced_commits_wait_out_the_rest_of_the_gap() -> None:
    clock = Clock()
    schedule = CommitSchedule(CommitPolicy(interval_s=1.0, every_records=1_000, max_per_second=4.0), clock)
    assert schedule.wait_before_forced([TP]) == 0.0
    schedule.sent(TP)
    clock.now += 0.1
    assert abs(schedule.wait_before_forced([TP, ("t", 1)]) - 0.15) < 1e-9


def test_the_cap_survives_a_partition_being_revoked_and_assigned_back() -> None:
    clock = Clock()
    schedule = CommitSchedule(CommitPolicy(interval_s=1.0, every_records=1_000, max_per_second=2.0), clock)
    schedule.sent(TP)
    schedule.forget(TP)
    clock.now += 0.1
    assert not schedule.due(TP)
