"""Listeners: one that raises is logged and the others are still told; removal is safe."""

from __future__ import annotations

import logging

import pytest

from migtui.listeners import Listeners


def test_a_failing_listener_neither_stops_the_others_nor_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    told: list[str] = []
    listeners: Listeners[[str]] = Listeners("change listener", logging.getLogger("test"), "src")

    def broken(what: str) -> None:
        raise RuntimeError(what)

    listeners.add(broken)
    remove = listeners.add(told.append)
    with caplog.at_level(logging.ERROR):
        listeners("paused")
    assert told == ["paused"]
    assert "src: change listener" in caplog.text and "RuntimeError: paused" in caplog.text
    remove()
    remove()  # twice: no error
    listeners("again")
    assert told == ["paused"] and listeners  # the broken one is still there


def test_a_listener_may_remove_itself_while_being_told() -> None:
    listeners: Listeners[[]] = Listeners("listener", logging.getLogger("test"))
    told: list[str] = []

    def once() -> None:
        told.append("once")
        remove()

    remove = listeners.add(once)
    listeners.add(lambda: told.append("other"))
    listeners()
    listeners()
    assert told == ["once", "other", "other"]
