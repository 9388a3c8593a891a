"""The convergence policy and postcopy as the dashboard shows them, over a real engine on a real
QEMU pair (``conftest.app_for``): the policy's act appears with its reason (a toast and the
convergence panel), ``6`` then enter switches the migration to postcopy, the policy stands down
for it, and it completes on the destination. No wait has a time limit a loaded machine can
reach: each ends when what it waits for happens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import View, app_for, screen_text, until
from tui_util import lab_monitors

from migtui.protocol.messages import PolicyInfo

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(900)]
LONG = 600.0  # a limit no loaded machine reaches: the wait ends when its condition holds


def shown(view: View) -> str:
    """The screen's words in order (frames gone: the panel wraps at its width)."""
    return " ".join(screen_text(view.app).replace("│", " ").split())


async def test_the_policy_acts_in_view_with_its_reason_and_postcopy_is_one_key_away(
        stuck: Callable[..., Any]) -> None:
    # downtime-limit 50 ms: six steps of the policy before its abort, ~20 s to press the key.
    lab = await stuck("postcopy-ram", downtime_limit=50)
    policy = PolicyInfo(converge="steps", converge_action="abort", explicit=["converge", "converge_action"])
    async with app_for(lab_monitors(lab), size=(80, 24), policy=policy) as view:
        src = view.sessions[0]
        assert src.name == "src"
        await lab.migrate()
        step = "src: converge policy: downtime-limit 50 ms → 100 ms: pass 4 not converging: step 1 of 6"
        await until(lambda: any(t.startswith(step) for t in view.toasts), LONG, "the policy's first step",
                    lambda: str(src.converge_policy))
        await until(lambda: "policy steps 100 ms (pass 4), next 150 ms, then abort" in shown(view), LONG,
                    "the policy's line in the panel", lambda: shown(view))
        screen = shown(view)
        assert "downtime-limit 50 ms → 100 ms: pass 4" in screen, screen  # cut at the width: the toast has it all

        await until(lambda: src.control("postcopy").allowed is True, LONG, "postcopy offered")
        await view.press("6")
        await until(lambda: view.app.screen.id == "confirm-postcopy", LONG, "the question")
        await view.pilot.pause()
        question = shown(view)
        assert "switch src to postcopy" in question and "Sends: migrate-start-postcopy" in question, question
        await view.press("enter")
        await until(lambda: src.state.migration_status == "completed", LONG, "completed",
                    lambda: src.state.migration_status)
        said = [t for t in view.toasts if t.startswith("src: migrate-start-postcopy")]
        assert said and "(by tui" in said[0], view.toasts
        assert any(t.startswith("src: converge policy: stands down for this migration: tui") and "(postcopy)" in t
                   for t in view.toasts), view.toasts
    ctl = await lab.control(lab.dst)
    assert (await ctl.execute("query-status"))["status"] == "running"
