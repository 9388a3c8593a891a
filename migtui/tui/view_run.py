"""Run the dashboard as a view of the user's engine (``migtui MONITOR...``, ``migtui attach``).

The engine is started if none runs, asked to watch the monitors, and the dashboard
shows its sessions. On quit (or SIGHUP) only the view goes: the engine keeps its
connections, and while it guards something (a pause and its deadline, an armed
source) one line says what and how to come back (``migtui attach``). If the engine
dies while a guest the view shows is paused or armed, the view starts a new engine at
once, watches its monitors again and says so (``view/engine_loss.py``); if it was
stopped, the view says which guest is left stopped and that nothing bounds it; with
nothing at stake it says so in one line and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import tzinfo
from functools import partial
from typing import TextIO

from ..errors import MigtuiError
from ..protocol.runtime import runtime
from ..view.client import EngineClient
from ..view.engine_loss import EngineLoss, engine_loss
from ..view.remote import RemoteSession
from .app import MigtuiApp, make_app
from .screens.switchover import SwitchoverScreen

EngineSetup = Callable[[EngineClient], Awaitable[list[str] | None]]
Follow = Callable[[RemoteSession], bool]

log = logging.getLogger("migtui.tui")

# A view starts a new engine for a dead one at once, but not for ever: one that keeps dying
# is said, and left.
MAX_RESTARTS = 3
RESTART_WINDOW_S = 60.0


async def view_main(runtime_dir: str | None, setup: EngineSetup, *, read_only: bool, start: bool = True,
                    before_run: Callable[[MigtuiApp], None] | None = None,
                    prog: str = "migtui", report_guard: bool = True,
                    run: Callable[[MigtuiApp], Awaitable[object]] | None = None,
                    clock: Callable[[], float] = time.time, tz: tzinfo | None = None, term: str | None = None,
                    bell: bool = False, follow: Follow | None = None) -> int:
    """Connect (starting the engine if asked), let ``setup`` watch monitors (returns their
    names, or None for all the engine has), run the dashboard on them, say what stays guarded.
    An engine that dies while a guest is at stake is replaced at once, and the dashboard
    runs again on the new one. ``run(app)`` runs it instead of ``app.run_async()`` on
    the terminal (the tests and the screenshots run it headless); ``clock``, ``tz`` and
    ``term`` are make_app's (the tests' fixed ones), and ``bell`` (--bell). ``follow``: the
    monitors the engine starts watching later that the dashboard adds (libvirt domains of its
    -c connections); with it, the dashboard opens even on no monitor yet."""
    before: EngineLoss | None = None  # how the engine before went, for the next dashboard to say
    restarts: list[float] = []
    while True:
        code = await _view_once(runtime_dir, setup, read_only=read_only, start=start, before=before,
                                before_run=before_run, prog=prog, report_guard=report_guard, run=run,
                                clock=clock, tz=tz, term=term, bell=bell, follow=follow)
        if isinstance(code, int):
            return code
        before, setup = code
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(restarts) > MAX_RESTARTS:  # it keeps dying: starting more would not bound anything
            for line in before.lines(restarted=False):
                _say(f"{prog}: {line}", sys.stderr)
            _say(f"{prog}: the engine died {len(restarts)} times within {RESTART_WINDOW_S:g} s: see"
                 f" {runtime(runtime_dir).directory / 'engine.err'}", sys.stderr)
            return 1
        start, before_run = True, None


async def _view_once(runtime_dir: str | None, setup: EngineSetup, *, read_only: bool, start: bool,
                     before: EngineLoss | None, before_run: Callable[[MigtuiApp], None] | None, prog: str,
                     report_guard: bool, run: Callable[[MigtuiApp], Awaitable[object]] | None,
                     clock: Callable[[], float], tz: tzinfo | None, term: str | None, bell: bool = False,
                     follow: Follow | None = None) -> int | tuple[EngineLoss, EngineSetup]:
    """One dashboard on one engine: its exit code, or (how it went, how to watch again)
    when the engine went away with a guest at stake."""
    client = EngineClient(runtime(runtime_dir), read_only=read_only, clock=clock)
    try:
        await client.connect(start=start)
        names = await setup(client)
        await client.subscribe()
    except MigtuiError as err:
        await client.close()
        if before is not None:  # no new engine to be had: what the one before left has no bound
            for line in before.lines(restarted=False):
                print(f"{prog}: {line}", file=sys.stderr)
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    sessions: list[RemoteSession] = [client.sessions[n] for n in names if n in client.sessions] if names is not None \
        else list(client.sessions.values())
    if names is None:
        follow = _every  # migtui attach: everything the engine watches
    if not sessions and follow is None:
        await client.close()
        print(f"{prog}: the engine watches no monitor yet: give MONITOR... to `migtui`", file=sys.stderr)
        return 1
    app = make_app(sessions=sessions, clock=clock, tz=tz, term=term, bell=bell)
    app.engine_client = client
    app.follow = follow
    app.engine_notices = before.lines(restarted=True) if before is not None else []
    client.add_notice_listener(partial(_engine_notice, app))
    app.early_notices = list(client.notices)  # said with the engine's picture, before this app listened
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
    app.freeze_after_start = run is None  # not in-process (tests): nothing frozen is collected
    try:
        await (app.run_async() if run is None else run(app))
    finally:
        watcher.cancel()
    code = int(app.return_code or 0)
    if lost:
        await client.close()
        gone = engine_loss(client.runtime, client.engine_pid, sessions, time.time(), client.goodbye)
        if gone.restart:
            log.warning("%s", "; ".join(gone.lines(restarted=True)))
            return gone, partial(_watch_again, sessions, read_only)
        if gone.stranded:
            for line in gone.lines(restarted=False):
                _say(f"{prog}: {line}", sys.stderr)
            return 1
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


async def _watch_again(sessions: list[RemoteSession], read_only: bool, client: EngineClient) -> list[str]:
    """Watch these monitors on a new engine, each with the policy the engine before had for it."""
    names: list[str] = []
    for s in sessions:
        names += await client.watch([s.address], s.pause.policy, read_only=read_only, interval=s.interval)
    return names


def _every(_session: RemoteSession) -> bool:
    return True


def _engine_notice(app: MigtuiApp, level: str, text: str, monitor: str | None, attempt: bool) -> None:
    """The engine's notice as a toast -- unless it is an action that changed nothing and
    that monitor's dialog is on top: its outcome line says so, and a toast would cover it."""
    screen = app.screen
    if attempt and isinstance(screen, SwitchoverScreen) and screen.source.name == monitor:
        return
    app.engine_notice(level, text)


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
