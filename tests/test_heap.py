"""Start-up objects are frozen out of the collector; what is allocated afterwards is still collected."""

from __future__ import annotations

import gc
import weakref

from hubstream.heap import freeze_startup_objects


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


def test_objects_alive_at_the_freeze_are_exempt_and_later_cycles_are_still_collected() -> None:
    before, before_ref = cycle()
    try:
        frozen = freeze_startup_objects()
        assert frozen > 1000 and gc.get_freeze_count() == frozen  # the test session's modules, at least
        del before
        gc.collect()
        assert before_ref() is not None  # frozen: the collector no longer looks at it
        after, after_ref = cycle()
        del after
        gc.collect()
        assert after_ref() is None  # allocated after the freeze: collected as usual
    finally:
        gc.unfreeze()  # the rest of the test session collects as before
