"""Widget tests drive widgets from Python. Button.click() swallows handler exceptions
(ipywidgets' CallbackDispatcher logs them), so every test here fails on any such exception,
and on any error the widgets log from their background threads."""

from __future__ import annotations

import logging

import pytest
from ipywidgets.widgets.widget import CallbackDispatcher

import workbench as wb


@pytest.fixture(autouse=True)
def fail_on_swallowed_exceptions(monkeypatch):
    swallowed: list[BaseException] = []
    original = CallbackDispatcher.__call__

    def recording_call(self, *args, **kwargs):
        for callback in self.callbacks:
            try:
                callback(*args, **kwargs)
            except Exception as exc:  # what ipywidgets would have logged and dropped
                swallowed.append(exc)
        return None

    monkeypatch.setattr(CallbackDispatcher, "__call__", recording_call)

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                swallowed.append(RuntimeError(record.getMessage()))

    handler = Collect()
    logging.getLogger("workbench.widgets").addHandler(handler)
    yield swallowed
    logging.getLogger("workbench.widgets").removeHandler(handler)
    assert original is not None
    if swallowed:
        raise AssertionError(f"a widget handler raised: {swallowed[0]!r}") from swallowed[0]


@pytest.fixture(scope="session")
def digits():
    return wb.load_data("digits").subset(train=20, valid=8, seed=0)


@pytest.fixture
def session(digits):
    model = wb.load_backbone("resnet18", num_classes=10, pretrained=False, image_size=16)
    return wb.Session(digits, model, optimizer="sgd", lr=0.05, batch_size=32, schedule="constant")
