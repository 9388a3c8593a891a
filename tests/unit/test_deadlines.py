"""Reply deadlines on one timer per connection (migtui.transport.deadlines), and the command
line a poll writes (migtui.transport.monitor._encode): on asyncio's own loop."""

from __future__ import annotations

import asyncio
import json

import pytest

from migtui.transport.deadlines import Deadlines
from migtui.transport.monitor import _Client, _encode, _Reply


async def test_an_unanswered_reply_times_out_and_an_answered_one_does_not() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    late, answered, patient = loop.create_future(), loop.create_future(), loop.create_future()
    deadlines.add("late", _Reply(late), 0.05)
    deadlines.add("answered", _Reply(answered), 0.05)
    deadlines.add("patient", _Reply(patient), 3600)
    answered.set_result({"return": {}})
    deadlines.discard("answered")
    with pytest.raises(TimeoutError):
        await late
    assert answered.result() == {"return": {}}
    assert not patient.done()  # its own deadline is far: the timer re-armed for it
    deadlines.discard("patient")


async def test_a_shorter_deadline_added_later_is_kept() -> None:
    """The timer is armed for the earliest reply due, whichever came first."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    slow, quick = loop.create_future(), loop.create_future()
    deadlines.add("slow", _Reply(slow), 3600)
    deadlines.add("quick", _Reply(quick), 0.05)
    with pytest.raises(TimeoutError):
        await quick
    assert not slow.done()
    deadlines.discard("slow")


async def test_a_connection_that_answers_keeps_one_timer() -> None:
    """What this saves: a timer made per command. Answered commands leave the one timer armed."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    made: list[float] = []
    call_at = loop.call_at

    def counted(when: float, *args: object) -> asyncio.TimerHandle:
        made.append(when)
        return call_at(when, *args)  # type: ignore[arg-type]  # a callback and its arguments

    loop.call_at = counted  # type: ignore[method-assign,assignment]  # counting, then restored
    try:
        for n in range(100):
            reply = loop.create_future()
            deadlines.add(n, _Reply(reply), 5.0)
            reply.set_result(None)
            deadlines.discard(n)
            await asyncio.sleep(0)
    finally:
        del loop.call_at
    assert len(made) == 1


@pytest.mark.parametrize("arguments", [None, {"capabilities": [{"capability": "events", "state": True}]}])
def test_the_command_line_is_the_json_qemu_reads(arguments: dict[str, object] | None) -> None:
    exec_id = _Client("m", lambda *_: None)._get_exec_id()  # qemu.qmp's own id
    line = json.loads(_encode("query-migrate", exec_id, arguments))
    assert line == {"execute": "query-migrate", "id": exec_id, **({"arguments": arguments} if arguments else {})}

