from kafka_consumer.processors.key_order import KeyOrderedQueue


def test_one_at_a_time_keeps_partition_order() -> None:
    queue: KeyOrderedQueue[int] = KeyOrderedQueue(1)
    for i, key in enumerate([b"a", b"b", b"a"]):
        queue.push(key, i)
    assert queue.take() == [0]
    assert queue.take() == []  # the first is still running
    queue.done(b"a")
    assert queue.take() == [1]
    queue.done(b"b")
    assert queue.take() == [2]


def test_other_keys_pass_a_busy_key_but_the_same_key_waits_in_order() -> None:
    queue: KeyOrderedQueue[str] = KeyOrderedQueue(3)
    for item in ["a1", "a2", "b1", "a3", "c1", "b2"]:
        queue.push(item[0].encode(), item)
    assert queue.take() == ["a1", "b1", "c1"]
    assert len(queue) == 3 and queue.running == 3
    queue.done(b"b")
    assert queue.take() == ["b2"]  # a2 still waits for a1, and a3 waits behind a2
    queue.done(b"a")
    assert queue.take() == ["a2"]  # a3 stays behind a2
    queue.done(b"a")
    assert queue.take() == ["a3"]


def test_limit_counts_records_in_flight() -> None:
    queue: KeyOrderedQueue[str] = KeyOrderedQueue(2)
    for item in ["a1", "b1", "c1", "a2"]:
        queue.push(item[0].encode(), item)
    assert queue.take() == ["a1", "b1"]
    queue.done(b"a")
    assert queue.take() == ["c1"]
    queue.done(b"b")
    assert queue.take() == ["a2"]


def test_records_without_a_key_keep_their_order() -> None:
    queue: KeyOrderedQueue[int] = KeyOrderedQueue(4)
    queue.push(None, 0)
    queue.push(None, 1)
    queue.push(b"k", 2)
    assert queue.take() == [0, 2]
    queue.done(None)
    assert queue.take() == [1]


def test_clear_drops_waiting_records_only() -> None:
    queue: KeyOrderedQueue[int] = KeyOrderedQueue(1)
    for i in range(3):
        queue.push(b"k", i)
    assert queue.take() == [0]
    assert queue.clear() == 2
    assert queue.running == 1 and len(queue) == 0


def test_take_more_gives_the_running_keys_next_records_in_its_slot() -> None:
    queue: KeyOrderedQueue[str] = KeyOrderedQueue(2)
    for item in ["a1", "b1", "a2", "c1", "a3"]:
        queue.push(item[0].encode(), item)
    assert queue.take() == ["a1", "b1"]
    assert queue.take_more(b"a", 5) == ["a2", "a3"]  # the same key only, in order
    assert queue.take() == []  # a and b still hold both slots
    queue.done(b"a")
    assert queue.take() == ["c1"]
    assert len(queue) == 0


def test_with_one_slot_take_more_gives_the_next_records_of_any_key() -> None:
    queue: KeyOrderedQueue[int] = KeyOrderedQueue(1)
    for i, key in enumerate([b"a", b"b", None, b"a"]):
        queue.push(key, i)
    assert queue.take() == [0]
    assert queue.take_more(b"a", 2) == [1, 2]
    queue.done(b"a")
    assert queue.take() == [3]


def test_many_keys_keep_offset_order_among_the_ready_ones() -> None:
    queue: KeyOrderedQueue[int] = KeyOrderedQueue(3)
    for i in range(300):
        queue.push(str(i % 7).encode(), i)
    order: list[int] = []
    while len(queue) or queue.running:
        started = queue.take()
        order += started
        for item in started:
            queue.done(str(item % 7).encode())
    assert order == list(range(300))
