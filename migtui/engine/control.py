"""The engine's side of migration control: the convergence advice it decides and sends, the
controls it offers for it (abort any migration, the remedies), and the requests that act.

One :class:`EngineControl` per engine. After every change of a watched monitor it re-runs the
advisor (``model/advisor.py``) on the session's state and parameters and sends the
:class:`~migtui.protocol.messages.Convergence` message when anything in it changed (the
ETA moves once a poll; most changes change nothing); the same advice goes into
``migtui status --json`` as ``migration.convergence``. Requests: an ``abort`` of a migration
that is not paused before switchover runs a :class:`~migtui.workflow.cancel.MigrationCancel`
(once per migration; a pause's abort stays the switchover's), a remedy sends its
``migrate-set-parameters`` (``workflow/control.py``). Every view hears of both as a notice.

The convergence policy (``workflow/converge_policy.py``) runs here too, after each new advice:
its steps and completion action are acted on by the engine, view or not, each a notice with
its reason, and its state goes to every view as a
:class:`~migtui.protocol.messages.ConvergePolicy` message. An operator's remedy or abort of a
migration makes it stand down for that migration.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import MigtuiError
from ..format import format_duration
from ..libvirt.domain import DomainMonitor
from ..model.advisor import ABORT, DIRTY_LIMIT, POSTCOPY, REMEDY_ACTIONS, Advice, Settings, advise, estimate_ms, is_news
from ..model.migration import FINISHED_STATUSES, RUNNING_STATUSES
from ..model.units import downtime_text
from ..protocol import messages as m
from ..workflow import control
from ..workflow import converge_policy as cp
from ..workflow.cancel import MigrationCancel
from ..workflow.pairing import destination_for
from ..workflow.policy import OWNER_LIBVIRT
from ..workflow.session import CONFIG, CONNECTION, DIRTY_RATE, MIGRATION, RUN_STATE, MonitorSession
from ..workflow.switchover import Switchover

if TYPE_CHECKING:
    from .engine import Engine, ViewLink, Watched

log = logging.getLogger("migtui.engine")

# What the advice is made of: a change of any of these re-decides it.
ADVICE_KINDS = frozenset({MIGRATION, CONFIG, CONNECTION, DIRTY_RATE, RUN_STATE})
POLICY = "the converge policy"  # the actor of the policy's acts
NO_DIRTY_RING = "under TCG: a vCPU dirty limit needs KVM with its dirty ring (-accel kvm,dirty-ring-size=N)"
# libvirt's postcopy: it switches only a migration started with VIR_MIGRATE_POSTCOPY, a flag its API
# does not tell (jobStats has no flags): known for a migration migtui started, else learnt from its refusal.
POSTCOPY_OFF = ("started without postcopy allowed (VIR_MIGRATE_POSTCOPY, virsh --postcopy): libvirt switches only"
                " a migration started with it: abort and start it again with postcopy-ram on")
POSTCOPY_UNKNOWN = (" (libvirt refuses unless the migration was started with --postcopy, VIR_MIGRATE_POSTCOPY:"
                    " its API does not say whether this one was)")
RESUME_WAIT_S = 60.0  # how long the destination may take to load the last of a migration the policy paused


class CancelRun:
    """One abort of a migration before its pause: who asked, and its task."""

    def __init__(self, cancel: MigrationCancel, actor: str, task: asyncio.Task[Any]) -> None:
        self.cancel = cancel
        self.actor = actor
        self.task = task


class EngineControl:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sent: dict[str, m.Convergence] = {}  # monitor -> the advice views have
        self._cancels: dict[str, CancelRun] = {}  # monitor -> its migration's abort, while it runs
        self._runs: dict[str, cp.ConvergeRun] = {}  # monitor -> the policy over its (last) migration
        self._policy_sent: dict[str, m.ConvergePolicy] = {}
        self._no_ring: dict[str, tuple[int, str]] = {}  # monitor -> (generation, QEMU's refusal of a dirty limit)
        self._dirty_limited: dict[str, tuple[int, int]] = {}  # monitor -> (generation, MB/s) migtui set
        self._no_postcopy: dict[str, str] = {}  # libvirt domain -> its refusal of postcopy in the job under way

    # ------------------------------------------------------------------ the advice

    def advice(self, w: Watched) -> Advice:
        session = w.session
        limited = self._dirty_limited.get(w.name)
        settings = Settings.of(session.parameters, session.state.capabilities, dirty_limit=not self.no_dirty_limit(w),
                               vcpu_dirty_limit=limited[1] if limited and limited[0] == session.generation else None)
        if w.via_libvirt:  # libvirt has no capabilities to read: its job's flag decides
            settings = replace(settings, postcopy_ram=not self.no_postcopy(w))
        return advise(session.state, settings, connected=session.connected, measuring=session.measuring,
                      migrated_to=self.migrated_to(w))

    def migrated_to(self, w: Watched) -> str | None:
        """The destination ``w`` left for by migration (a libvirt source no longer on its host,
        listed a while with its final figures; "": a host migtui does not watch), else None."""
        monitor = w.session.monitor
        if w.session.connected or not isinstance(monitor, DomainMonitor) or not monitor.migrated_away:
            return None
        destination = destination_for(w.session, self.engine.sessions())
        return destination.name if destination is not None else ""

    def no_dirty_limit(self, w: Watched) -> str:
        """Why this QEMU cannot limit its vCPUs' dirty rate ("": it may)."""
        session = w.session
        if not session.supports("set-vcpu-dirty-limit"):
            return f"QEMU {session.qemu_version or ''} has no set-vcpu-dirty-limit (7.1+)".replace("  ", " ")
        if session.kvm is None:  # query-kvm, read by the session on each connection
            return "not known yet whether this QEMU runs under KVM (a vCPU dirty limit needs it)"
        if not session.kvm:
            return NO_DIRTY_RING
        refused = self._no_ring.get(w.name)
        return refused[1] if refused is not None and refused[0] == session.generation else ""

    def no_postcopy(self, w: Watched) -> str:
        """Why libvirt will not switch ``w``'s migration to postcopy ("": it may, or it is not known)."""
        if not w.via_libvirt:
            return ""
        refused = self._no_postcopy.get(w.name)
        if refused:
            return refused
        return POSTCOPY_OFF if self.engine.starts.libvirt.postcopy(w) is False else ""

    def _forget_job(self, w: Watched) -> None:
        """What was learnt of a libvirt job is its own: gone with it."""
        if w.name in self._no_postcopy and w.session.state.migration_status not in RUNNING_STATUSES:
            del self._no_postcopy[w.name]
            self.engine.refresh_advice(w)

    def message(self, w: Watched) -> m.Convergence:
        """What views have (or would have) of ``w``'s advice."""
        return self._sent.get(w.name) or m.Convergence(w.name, self.advice(w))

    def on_change(self, w: Watched, kinds: frozenset[str]) -> None:
        """Re-decide ``w``'s advice; tell every view if it changed (and the controls it feeds)."""
        if not kinds & ADVICE_KINDS:
            return
        self._forget_job(w)
        message = m.Convergence(w.name, self.advice(w))
        previous = self._sent.get(w.name)
        if previous is None or is_news(previous.advice, message.advice):
            self._sent[w.name] = message
            self.engine.broadcast(message)
            if previous is None or (previous.advice.verdict, previous.advice.remedies) != (
                    message.advice.verdict, message.advice.remedies):
                self.engine.refresh_controls(w)
                if previous is None or previous.advice.verdict != message.advice.verdict:
                    log.info("%s: %s: %s", w.name, message.advice.verdict, message.advice.reason)
        self._lift_dirty_limit(w)
        self._run_policy(w, message.advice)

    def status(self, w: Watched) -> dict[str, Any]:
        """``migration.convergence`` of ``migtui status --json``: what the screen shows."""
        return self.message(w).advice.to_json()

    # ------------------------------------------------------------------ the convergence policy

    def policy_message(self, w: Watched) -> m.ConvergePolicy:
        """What views have (or would have) of ``w``'s convergence policy."""
        return self._policy_sent.get(w.name) or self._policy_of(w)

    def policy_status(self, w: Watched) -> dict[str, Any]:
        """``converge_policy`` of ``migtui status --json``: what the screen shows."""
        message = self.policy_message(w)
        return {"active": message.active, "line": message.line,
                "acts": [{"at": act.at, "text": act.text} for act in message.acts]}

    def guards(self, w: Watched) -> str | None:
        """Why the engine must stay for ``w``: its migration is under the policy."""
        run = self._runs.get(w.name)
        if run is None or run.ended or run.overridden:
            return None
        return f"migrating under the converge policy ({self._policy_of(w).line})"

    def _policy_of(self, w: Watched) -> m.ConvergePolicy:
        session = w.session
        policy = w.policy
        if not cp.active(policy):
            return m.ConvergePolicy(w.name)
        run = self._runs.get(w.name)
        acts = [m.PolicyAct(at, text) for at, text in run.acts] if run is not None else []
        if w.owner == OWNER_LIBVIRT:
            line = "libvirt drives this migration: the policy does not act"
        elif session.read_only:
            line = "read-only monitor: the policy cannot act"
        elif session.state.incoming_side and session.state.migration.ram is None:
            line = "the destination of a migration: its source's policy acts"
        elif run is not None and run.generation == session.generation:
            state = session.state
            line = run.line(state, session.downtime_limit_ms)
            if run.ended:
                line = f"migration {state.migration_status}" + (f"; {line}" if run.acts else "")
        else:
            line = cp.describe(policy, session.state.capabilities.get("postcopy-ram"))
        return m.ConvergePolicy(w.name, True, line, acts)

    def _send_policy(self, w: Watched) -> None:
        message = self._policy_of(w)
        if message != self._policy_sent.get(w.name):
            self._policy_sent[w.name] = message
            self.engine.broadcast(message)

    def _run_policy(self, w: Watched, advice: Advice) -> None:
        """After each new advice: start, follow and end the policy's run over ``w``'s migration,
        and take its next act when one is due."""
        session = w.session
        state = session.state
        status = state.migration_status
        run = self._runs.get(w.name)
        if run is not None and run.generation != session.generation:  # another connection: its migration is gone
            del self._runs[w.name]
            run = None
        if run is not None and not run.ended and status in FINISHED_STATUSES:
            run.ended = True
            if run.paused:
                self._task(w, self._after_pause(w, run, status), "resume")
        destination = state.incoming_side and state.migration.ram is None  # its source's policy acts
        if cp.active(w.policy) and status in ("setup", "active") and (run is None or run.ended) and not destination:
            run = self._runs[w.name] = cp.ConvergeRun(w.policy, session.generation)
        if run is not None and not run.ended and w.owner != OWNER_LIBVIRT and not session.read_only:
            run.policy = w.policy
            act = run.decide(state, session.downtime_limit_ms, advice.verdict)
            if act is not None:
                run.busy = True
                self._task(w, self._act(w, run, act, advice), act.kind)
        self._send_policy(w)

    def _task(self, w: Watched, coro: Any, what: str) -> None:
        asyncio.get_running_loop().create_task(coro, name=f"policy-{what}-{w.name}")

    async def _act(self, w: Watched, run: cp.ConvergeRun, act: cp.Act, advice: Advice) -> None:
        session = w.session
        why = act.reason
        if advice.expected_downtime_ms is not None:
            why += f" (expected downtime {estimate_ms(advice.expected_downtime_ms)})"
        level = "warning"
        try:
            if act.kind == cp.DOWNTIME:
                assert act.value is not None
                run.stepped_at = session.state.migration.pass_number or 0
                before = session.downtime_limit_ms
                shown = downtime_text(act.value)
                await control.send(session, "migrate-set-parameters", {"downtime-limit": act.value},
                                   f"downtime-limit {shown}")
                session.poll_soon(config=True)
                text = f"downtime-limit {downtime_text(before) if before else '?'} → {shown}: {why}"
            else:
                run.final = act.kind
                if act.kind == cp.ABORT:
                    self._start_cancel(w, POLICY)
                    text = f"abort (migrate_cancel; the source runs on): {why}"
                elif act.kind == cp.POSTCOPY:
                    await control.send(session, "migrate-start-postcopy", {}, "migrate-start-postcopy")
                    text = f"migrate-start-postcopy (the destination runs the guest): {why}"
                else:
                    await control.send(session, "stop", {}, "stop")
                    run.paused, run.paused_at = True, self.engine.clock()
                    text = f"stop the source guest so the copy completes (migtui resumes it after): {why}"
        except MigtuiError as err:
            level, text = "error", f"{err}: {why}"
        finally:
            run.busy = False
        self._policy_said(w, run, level, text)

    def _policy_said(self, w: Watched, run: cp.ConvergeRun, level: str, text: str) -> None:
        line = f"{w.name}: converge policy: {text}"
        run.acts.append((self.engine.clock(), text))
        (log.error if level == "error" else log.info)("%s", line)
        self._send_policy(w)  # the panel has it before the toast says it
        self.engine.broadcast(m.Notice(level, line, w.name))

    async def _after_pause(self, w: Watched, run: cp.ConvergeRun, status: str) -> None:
        """The policy stopped the source guest: run it again where it now lives."""
        if status == "completed":
            target = destination_for(w.session, self.engine.sessions())
            where = "the destination"
        else:
            target, where = w.session, "the source"
        if target is None:
            self._policy_said(w, run, "warning", f"migration {status}: the guest stays paused on the destination"
                              " (not watched here): resume it there (cont)")
            return
        try:
            await wait_loaded(target)
            await control.send(target, "cont", {}, f"cont on {target.name}")
            stopped = f" after {format_duration(self.engine.clock() - run.paused_at)} stopped" if run.paused_at else ""
            text, level = f"migration {status}: cont on {target.name}: the guest runs on {where}{stopped}", "info"
        except MigtuiError as err:
            text, level = f"migration {status}: the guest stays paused on {where}: {err}", "error"
        run.paused = False
        self._policy_said(w, run, level, text)

    def _override(self, w: Watched, who: str) -> None:
        """An operator acted on ``w``'s migration: the policy leaves the rest of it to them."""
        run = self._runs.get(w.name)
        if run is None or run.ended or run.overridden or run.final:
            return
        run.overridden = who
        self._policy_said(w, run, "info", f"stands down for this migration: {who}")

    def _lift_dirty_limit(self, w: Watched) -> None:
        """A dirty limit migtui set outlives the migration in QEMU: lift it from a source whose
        migration failed or was cancelled (a completed one's guest runs elsewhere now)."""
        session = w.session
        limited = self._dirty_limited.get(w.name)
        if limited is None or session.state.migration_status not in FINISHED_STATUSES:
            return
        del self._dirty_limited[w.name]
        if limited[0] != session.generation or session.state.migration_status == "completed":
            return

        async def lift() -> None:
            try:
                await control.send(session, "cancel-vcpu-dirty-limit", {}, "cancel-vcpu-dirty-limit")
                self.engine.broadcast(m.Notice("info", f"{w.name}: vCPU dirty limit lifted (the migration ended"
                                                       f" {session.state.migration_status})", w.name))
            except MigtuiError as err:
                self.engine.broadcast(m.Notice("error", str(err), w.name))

        self._task(w, lift(), "lift")

    # ------------------------------------------------------------------ the controls

    def controls(self, w: Watched, controller: Switchover | None, *, libvirt: bool,
                 mirrors: bool) -> dict[str, m.Control]:
        """The abort (any stage) and the remedies, as ``controls`` carries them."""
        session = w.session
        advice = self.message(w).advice
        running = self._cancels.get(w.name)
        if running is not None:
            abort = m.Control(False, f"{w.name}: abort under way (started by {running.actor})")
        else:
            allowed = control.abort(session, controller, libvirt=libvirt and not w.via_libvirt)
            abort = m.Control(allowed.allowed, allowed.reason, control.abort_does(session, mirrors))
        actions = {ABORT: abort}
        for action in REMEDY_ACTIONS:
            allowed = control.remedy(session, advice, action, no_dirty_limit=self.no_dirty_limit(w),
                                     no_postcopy=self.no_postcopy(w))
            remedy = control.proposal(advice, action)
            does = remedy.line() if remedy is not None else ""
            if action == POSTCOPY and w.via_libvirt and does:
                known = self.engine.starts.libvirt.postcopy(w) is not None
                does = f"libvirt's migrateStartPostCopy: {does}" + ("" if known else POSTCOPY_UNKNOWN)
            actions[action] = m.Control(allowed.allowed, allowed.reason, does)
        return actions

    # ------------------------------------------------------------------ requests

    def handles(self, w: Watched, action: str) -> bool:
        """Whether ``action`` on ``w`` is this module's (a pause's abort is the switchover's)."""
        if action in REMEDY_ACTIONS:
            return True
        if action != ABORT:
            return False
        controller = self.engine.switchovers.current(w.session)
        return not (w.session.state.in_pre_switchover or (controller is not None and controller.running)
                    or (controller is not None and controller.result is not None
                        and controller.result.abort_offered and not controller.finished))

    async def request(self, w: Watched, view: ViewLink, action: str, *, value: str = "",
                      force: bool = False) -> m.Reply:
        if action == ABORT:
            reply = self._abort(w, view, force=force)
            if reply.ok:
                self._override(w, f"{view.label} aborted it")
            return reply
        advice = self.message(w).advice
        session = w.session
        try:
            said = await control.apply_remedy(session, advice, action, value, no_postcopy=self.no_postcopy(w))
        except MigtuiError as err:
            log.info("%s: %s refused for %s: %s", w.name, action, view.label, err)
            if action == POSTCOPY and w.via_libvirt and "VIR_MIGRATE_POSTCOPY" in str(err):
                # libvirt's word: this job was not started with postcopy allowed (not offered again for it)
                self._no_postcopy[w.name] = str(err).removeprefix(f"{w.name}: ")
                self.engine.refresh_advice(w)
            if action == DIRTY_LIMIT and "dirty" in str(err).lower() and "ring" in str(err).lower():
                self._no_ring[w.name] = (session.generation, str(err).removeprefix(f"{w.name}: "))
                self.engine.refresh_advice(w)
            return m.Reply(0, False, error=str(err))
        if action == DIRTY_LIMIT:
            proposed = control.proposal(advice, action)
            limit, _ = control.read_value(action, "dirty-rate", value or (proposed.value if proposed else ""))
            self._dirty_limited[w.name] = (session.generation, limit)
            self.engine.refresh_advice(w)
        log.info("%s (by %s)", said, view.label)
        self.engine.broadcast(m.Notice("info", f"{said} (by {view.label})", w.name))
        self._override(w, f"{view.label} took over ({action})")
        return m.Reply(0, True, message=said, actor=view.label)

    def _abort(self, w: Watched, view: ViewLink, *, force: bool) -> m.Reply:
        running = self._cancels.get(w.name)
        if running is not None:
            return m.Reply(0, True, message=f"{w.name}: abort already started by {running.actor}",
                           actor=running.actor)
        session = w.session
        libvirt = w.owner == "libvirt" and not w.via_libvirt
        allowed = control.abort(session, self.engine.switchovers.current(session), libvirt=libvirt and not force)
        if allowed.allowed is not True:
            return m.Reply(0, False, error=allowed.reason or f"{w.name}: nothing to abort")
        self._start_cancel(w, view.label)
        self.engine.broadcast(m.Notice("info", f"{w.name}: abort started by {view.label}", w.name))
        return m.Reply(0, True, message=f"{w.name}: abort started", actor=view.label)

    def _start_cancel(self, w: Watched, actor: str) -> None:
        session = w.session
        cancel = MigrationCancel(session)
        log.info("%s: abort (migrate_cancel, %s) requested by %s", w.name, session.state.migration_status, actor)
        task = asyncio.get_running_loop().create_task(cancel.run(), name=f"cancel-{w.name}")
        self._cancels[w.name] = CancelRun(cancel, actor, task)
        task.add_done_callback(lambda t: self._aborted(w, t))
        self.engine.refresh_controls(w)

    def _aborted(self, w: Watched, task: asyncio.Task[Any]) -> None:
        self._cancels.pop(w.name, None)
        self.engine.refresh_controls(w)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("%s: abort failed", w.name, exc_info=error)
            self.engine.broadcast(m.Notice("error", f"{w.name}: abort failed: {error}", w.name))
            return
        result = task.result()
        (log.info if result.ok else log.warning)("%s", result.message)
        self.engine.broadcast(m.Notice("info" if result.ok else "error", result.message, w.name))


async def wait_loaded(session: MonitorSession) -> None:
    """Until ``session``'s QEMU has loaded the whole migration (no longer ``inmigrate``: a
    ``cont`` before that would be forgotten), at most ``RESUME_WAIT_S``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + RESUME_WAIT_S
    while True:
        reply = await session.execute("query-status")
        status = reply.get("status") if isinstance(reply, dict) else None
        if status != "inmigrate":
            return
        if loop.time() > end:
            raise MigtuiError(f"{session.name}: still inmigrate after {RESUME_WAIT_S:g} s")
        await asyncio.sleep(0.1)
