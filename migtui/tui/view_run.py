"""Run the dashboard as a view of the user's engine (``migtui MONITOR...``, ``migtui attach``).

The engine is started if none runs, asked to watch the monitors, and the dashboard
shows its sessions. On quit (or SIGHUP) only the view goes: the engine keeps its
connections, and while it guards something (a pause and its deadline, an armed
source) one line says what and how to come back (``migtui attach``). If the engine
dies the view says so in one line and exits; the next ``migtui`` starts a new one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import tzinfo
from functools import partial
from typing import TextIO

from ..address import MonitorAddress
from ..engine.runtime import runtime
from ..errors import MigtuiError
from ..view.client import EngineClient
from ..view.remote import RemoteSession
from .app import MigtuiApp, make_app
from .screens.switchover import SwitchoverScreen

EngineSetup = Callable[[EngineClient], Awaitable[list[str] | None]]


def run_view(args: argparse.Namespace, addresses: Sequence[MonitorAddress]) -> int:
    from .command import policy_of

    async def setup(client: EngineClient) -> list[str] | None:
        return await client.watch(addresses, policy_of(args), read_only=args.read_only, interval=args.interval)

    return asyncio.run(view_main(args.runtime_dir, setup, read_only=args.read_only))


async def view_main(runtime_dir: str | None, setup: EngineSetup, *, read_only: bool, start: bool = True,
                    before_run: Callable[[MigtuiApp], None] | None = None,
                    prog: str = "migtui", report_guard: bool = True,
                    run: Callable[[MigtuiApp], Awaitable[object]] | None = None,
                    clock: Callable[[], float] = time.time, tz: tzinfo | None = None, term: str | None = None) -> int:
    """Connect (starting the engine if asked), let ``setup`` watch monitors (returns their
    names, or None for all the engine has), run the dashboard on them, say what stays guarded.

    ``run`` runs the app (default: on this terminal; the tests run it headless, under
    Textual's Pilot); ``clock``, ``tz`` and ``term`` are make_app's (the tests' fixed ones)."""
    client = EngineClient(runtime(runtime_dir), read_only=read_only, clock=clock)
    try:
        await client.connect(start=start)
        names = await setup(client)
        await client.subscribe()
    except MigtuiError as err:
        await client.close()
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    sessions: list[RemoteSession] = [client.sessions[n] for n in names if n in client.sessions] if names is not None \
        else list(client.sessions.values())
    if not sessions:
        await client.close()
        print(f"{prog}: the engine watches no monitor yet: give MONITOR... to `migtui`", file=sys.stderr)
        return 1
    app = make_app(sessions=sessions, clock=clock, tz=tz, term=term)
    app.engine_client = client
    client.add_notice_listener(partial(_engine_notice, app))
    lost: list[str] = []

    async def watch_link() -> None:
        assert client.closed is not None
        why = await asyncio.shield(client.closed)
        lost.append(why)
        app.exit(return_code=1)

    # What happened while no view watched (a deadline's abort, another view's resume):
    # the engine kept the story; say it once, where the operator looks first.
    app.startup_notices = [line for line in (_outcome_line(s) for s in sessions) if line]
    if before_run is not None:
        before_run(app)
    watcher = asyncio.create_task(watch_link())
    try:
        await (app.run_async() if run is None else run(app))
    finally:
        watcher.cancel()
    code = int(app.return_code or 0)
    if lost:
        await client.close()
        _say(f"{prog}: {lost[0]}: run migtui again to start a new engine (the monitors are free again)",
             sys.stderr)
        return 1
    lines: list[str] = []
    if report_guard and code not in (129, 143):  # no terminal to tell any more
        with contextlib.suppress(MigtuiError, asyncio.TimeoutError):
            lines = await asyncio.wait_for(client.guarding(), 5)
    await client.close()
    if lines:
        _say(f"{prog}: the engine keeps guarding " + "; ".join(lines) + " -- `migtui attach` to watch again")
    return code


def _engine_notice(app: MigtuiApp, level: str, text: str, monitor: str | None, attempt: bool) -> None:
    """The engine's notice as a toast -- unless it is an action that changed nothing and
    that monitor's dialog is on top: its outcome line says so, and a toast would cover it."""
    screen = app.screen
    if attempt and isinstance(screen, SwitchoverScreen) and screen.source.name == monitor:
        return
    app.notify(text, title="Engine", severity="error" if level == "error" else "information", timeout=12)


def _say(line: str, stream: TextIO | None = None) -> None:
    """One line to the terminal, if there still is one (after a hang-up there is not)."""
    with contextlib.suppress(OSError):
        print(line, file=stream or sys.stdout, flush=True)


async def stop_engine(runtime_dir: str) -> None:
    """Stop the engine of ``runtime_dir`` (the demo's own), whatever it guards."""
    client = EngineClient(runtime(runtime_dir), kind="migtui demo")
    try:
        await client.connect(start=False)
        await client.stop_engine(5)
    except MigtuiError:
        pass
    finally:
        await client.close()


def _outcome_line(session: RemoteSession) -> str | None:
    controller = session.switchover
    result = controller.result
    if result is None or controller.action is None:
        return None
    by = f" (by {controller.actor})" if controller.actor else ""
    return f"{result.reason}{by}"
