"""The event bus: unknown events rejected, subscriber errors reported and never fatal, throttling."""

import time

import pytest

from workbench.errors import ConfigError
from workbench.train.events import EventBus


def test_unknown_event_is_rejected_with_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"Unknown event 'epoch_ned'.*'epoch_end'"):
        EventBus().on("epoch_ned", print)


def test_subscriber_exception_goes_to_error_event_and_others_still_run() -> None:
    bus, seen, errors = EventBus(), [], []
    bus.on("epoch_end", lambda p: 1 / 0)
    bus.on("epoch_end", seen.append)
    bus.on("error", errors.append)
    bus.emit("epoch_end", "payload")
    assert seen == ["payload"]
    assert len(errors) == 1 and "ZeroDivisionError" in errors[0].message and errors[0].where == "subscriber epoch_end"


def test_subscriber_exception_without_error_handler_warns() -> None:
    bus = EventBus()
    bus.on("fit_end", lambda p: 1 / 0)
    with pytest.warns(RuntimeWarning, match="ZeroDivisionError"):
        bus.emit("fit_end", None)


def test_batch_events_are_throttled_but_the_last_batch_always_passes() -> None:
    bus = EventBus(batch_interval_s=0.2)
    due = [bus.batch_due(last=False) for _ in range(1000)]
    assert sum(due) == 1  # 1000 fast batches inside 0.2 s: one emission
    assert bus.batch_due(last=True)
    time.sleep(0.21)
    assert bus.batch_due(last=False)
