"""Every message between the engine and its views: one frozen dataclass per message.

Each message class has its ``OP`` (the JSON ``op``); :data:`MESSAGES` finds the class
of an op. Requests carry an ``id`` the engine's :class:`Reply` repeats. The facts a
view shows about a pause and the controls it offers are decided in the engine and
travel here as they are (:class:`Pause`, :class:`Controls`): a view renders them and
never works them out again. ``docs/protocol.md`` is checked against these classes
(tests/unit/test_protocol.py): change both together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..model.advisor import REMEDY_ACTIONS, Advice
from ..model.checks import Check
from ..model.features import QemuFeatures
from ..model.pauseclock import PauseClock
from ..model.qmpinput import QmpInput
from ..model.startoffer import StartTarget
from ..model.switchover import Phase, Step, SwitchoverResult
from .framing import Json


@dataclass(frozen=True)
class Message:
    OP: ClassVar[str] = ""


# ---------------------------------------------------------------------- handshake


@dataclass(frozen=True)
class ViewInfo:
    kind: str = "view"  # "tui", "migtui status", "migtui engine stop", ...
    tty: str | None = None
    pid: int | None = None


@dataclass(frozen=True)
class Hello(Message):
    """The view's first message."""

    OP: ClassVar[str] = "hello"
    version: int
    view: ViewInfo = field(default_factory=ViewInfo)
    read_only: bool = False  # the whole view may change nothing: the engine refuses its requests


@dataclass(frozen=True)
class Welcome(Message):
    """The engine's first answer."""

    OP: ClassVar[str] = "welcome"
    version: int
    pid: int
    runtime_dir: str
    heartbeat: float = 0.0  # the engine sends a heartbeat when it has sent nothing for this long (0: never)


@dataclass(frozen=True)
class Error(Message):
    """One line; then the engine closes the connection."""

    OP: ClassVar[str] = "error"
    error: str


# ---------------------------------------------------------------------- requests (view -> engine)


@dataclass(frozen=True)
class Call(Message):
    """A request the engine answers with a :class:`Reply` carrying the same ``id``.
    ``expires``: when the view gives up waiting for the reply (wall clock: the engine and
    its views share the machine). The engine refuses a request it reads after that -- it
    was stopped or hung meanwhile, and the view told its operator that nothing was done."""

    id: int
    expires: float | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class AddressInfo:
    name: str
    kind: str  # "unix" or "tcp"
    path: str | None = None  # absolute
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class PolicyInfo:
    auto_resume: bool = False
    max_pause_s: float = 60.0
    on_max_pause: str = "abort"  # "abort", "resume" or "wait"
    explicit: list[str] = field(default_factory=list)  # the flags the operator gave
    converge: str = "none"  # "none" (advise only) or "steps" (workflow/converge_policy.py)
    completion_timeout_s: float | None = None  # seconds per GiB of guest RAM; None: no timeout
    converge_action: str = "abort"  # "abort", "postcopy" or "pause": what ends a migration the policy gives up on


@dataclass(frozen=True)
class Watch(Call):
    OP: ClassVar[str] = "watch"
    monitors: list[AddressInfo]
    policy: PolicyInfo = field(default_factory=PolicyInfo)
    read_only: bool = False
    interval: float = 1.0


@dataclass(frozen=True)
class Subscribe(Call):
    OP: ClassVar[str] = "subscribe"


@dataclass(frozen=True)
class Request(Call):
    """An action on a monitor; each changes a VM (refused for a read-only view)."""

    OP: ClassVar[str] = "request"
    action: str  # one of ACTIONS
    monitor: str
    force: bool = False  # resume/abort a pause libvirt drives (confirmed naming libvirt)
    value: str = ""  # a remedy's value as the operator typed it ("67 MiB/s", "5 s"); "": the engine's proposal


@dataclass(frozen=True)
class Start(Call):
    """Start a migration of ``monitor`` (refused for a read-only view): the operator's choices
    as typed, validated by the engine against its own offer before anything is sent."""

    OP: ClassVar[str] = "start"
    monitor: str
    destination: str = ""  # a monitored destination waiting with -incoming defer; "": a typed URI
    address: str = ""  # unix:/PATH or tcp:HOST:PORT as typed; "": the one the engine picked
    capabilities: list[str] = field(default_factory=list)  # switched on; every other one offered goes off
    parameters: dict[str, str] = field(default_factory=dict)  # as typed ("500 ms", "1 Gbit/s", "4")
    disks: list[str] = field(default_factory=list)  # source nodes to mirror


@dataclass(frozen=True)
class Status(Call):
    OP: ClassVar[str] = "status"
    addresses: list[str]  # "unix:/abs/path", "tcp:host:port"


@dataclass(frozen=True)
class Guarding(Call):
    OP: ClassVar[str] = "guarding"
    stopping: bool = False  # only what stopping the engine would leave unguarded


@dataclass(frozen=True)
class Stop(Call):
    OP: ClassVar[str] = "stop"


@dataclass(frozen=True)
class Reply(Message):
    """The answer to a request (its ``id``). Fields beyond ``ok``/``error`` are the
    request's own: ``message``/``actor`` (request), ``names`` (watch), ``lines``
    (guarding, stop), ``monitors`` (status: the ``migtui status --json`` objects)."""

    OP: ClassVar[str] = "reply"
    id: int
    ok: bool
    error: str | None = None
    message: str | None = None
    actor: str | None = None
    names: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    monitors: list[Json] = field(default_factory=list)


# ---------------------------------------------------------------------- what the engine sends


@dataclass(frozen=True)
class Monitor(Message):
    """A monitor to show."""

    OP: ClassVar[str] = "monitor"
    name: str
    address: AddressInfo
    interval: float = 1.0
    read_only: bool = False


@dataclass(frozen=True)
class Unwatched(Message):
    """A monitor the engine no longer watches (a libvirt domain that stopped, was undefined
    or left by migration): every view drops it. ``why``: one line, e.g. "a/vm: shut off"."""

    OP: ClassVar[str] = "unwatched"
    name: str
    why: str = ""


@dataclass(frozen=True)
class Feed(Message):
    OP: ClassVar[str] = "feed"
    name: str
    entries: list[QmpInput]


@dataclass(frozen=True)
class Session(Message):
    """The connection and what the QEMU can do."""

    OP: ClassVar[str] = "session"
    name: str
    state: str  # "connecting", "connected", "retrying", "lost"
    attempt: int = 0
    error: str | None = None
    error_kind: str | None = None  # the error's class: "SocketMissing" reads "waiting for the socket"
    retry_s: float | None = None  # while not connected: the time between two attempts now
    poll_error: str | None = None
    qemu: str | None = None
    measuring: bool = False
    polls: int = 0
    features: QemuFeatures = field(default_factory=QemuFeatures)
    read_only: bool = False
    generation: int = 0  # bumped on every new connection: what a view knew of the QEMU before is void
    commands: list[str] | None = None


@dataclass(frozen=True)
class SwitchoverState:
    phase: Phase = Phase.WAITING
    action: str | None = None
    actor: str | None = None  # who started it ("tui on /dev/pts/3 (pid 42)", "auto-resume", "deadline")
    steps: list[Step] = field(default_factory=list)
    result: SwitchoverResult | None = None
    attempt: SwitchoverResult | None = None  # the last action that changed nothing: it may be tried again
    attempts: int = 0  # actions started on this pause
    pause_since: float | None = None
    device_at: float | None = None
    pause_ms: float | None = None
    destination: str | None = None


@dataclass(frozen=True)
class Switchover(Message):
    """The engine's switchover of this source's pause."""

    OP: ClassVar[str] = "switchover"
    name: str
    state: SwitchoverState


@dataclass(frozen=True)
class Deadline:
    at: float  # wall clock at which the engine acts
    action: str  # what it does then: "abort" or "resume"
    limit_s: float  # --max-pause


@dataclass(frozen=True)
class Pause(Message):
    """Everything a view shows about a source's pre-switchover pause, as the engine decided
    it: sent again whenever any of it changes."""

    OP: ClassVar[str] = "pause"
    name: str
    paused: bool = False  # QEMU waits in pre-switchover now
    episode: int = 0  # which pause of this monitor this is (the engine counts them): a new one is news
    clock: PauseClock | None = None  # since when the guest is stopped, and how sure that is
    lost_at: float | None = None  # the source's monitor was lost during the pause then
    owner: str = "other"  # "migtui" (it armed the source), "libvirt" (libvirt drives it), "other"
    driver: str = ""  # one line: who drives this pause (shown when it is not migtui)
    armed_by_engine: list[str] = field(default_factory=list)
    policy: PolicyInfo = field(default_factory=PolicyInfo)
    deadline: Deadline | None = None  # the engine acts then, view or not
    no_deadline: str = ""  # why there is none (when deadline is None)
    auto: bool = False  # the engine's --auto-resume handles this pause
    notes: dict[str, str] = field(default_factory=dict)  # "held", "auto", "deadline" -> one line
    checklist: list[Check] = field(default_factory=list)
    blocked: str = ""  # why migtui can act on this pause at all now (the monitor is not connected...)
    destination: str | None = None  # the monitor paired as this migration's destination


@dataclass(frozen=True)
class Control:
    """One action a view may offer on a monitor, as the engine would answer it now.
    ``allowed``: True (go ahead), None (it applies, not now: shown unavailable with
    ``reason``) or False (nothing to act on here: not offered). ``does``: what it would do."""

    allowed: bool | None
    reason: str = ""
    does: str = ""


@dataclass(frozen=True)
class Controls(Message):
    """The actions on a monitor (``resume``, ``abort``, ``arm``, ``measure``, the remedies
    ``bandwidth``, ``switchover-bandwidth``, ``downtime``, ``throttle``, ``dirty-limit``,
    ``postcopy``, and ``start``, ``write-blocking``): sent again whenever one of them changes."""

    OP: ClassVar[str] = "controls"
    name: str
    actions: dict[str, Control] = field(default_factory=dict)


@dataclass(frozen=True)
class Convergence(Message):
    """The convergence advisor's word on a monitor's migration (``model/advisor.py``): the
    verdict, why in numbers, the ETA, the expected downtime, the remedies and the per-pass
    trend, decided by the engine and sent again whenever any of it changes (``at`` alone only
    with an ETA: ``model/advisor.is_news``)."""

    OP: ClassVar[str] = "convergence"
    name: str
    advice: Advice = field(default_factory=Advice)


@dataclass(frozen=True)
class PolicyAct:
    at: float  # the engine's wall clock
    text: str  # what it did and why, in numbers


@dataclass(frozen=True)
class ConvergePolicy(Message):
    """The convergence policy the engine runs on a monitor's migrations
    (``workflow/converge_policy.py``): whether one is set, one line saying what it does next
    (or why it does not act), and what it did on this migration, each act with its reason."""

    OP: ClassVar[str] = "converge-policy"
    name: str
    active: bool = False  # --converge steps or --completion-timeout applies to this monitor
    line: str = ""
    acts: list[PolicyAct] = field(default_factory=list)


@dataclass(frozen=True)
class StartOffer(Message):
    """What a start of a migration of this source may set, per destination (each monitored
    QEMU waiting with -incoming defer, then a typed URI): decided by the engine
    (``workflow/start.py``) from both QEMUs, sent again whenever it changes."""

    OP: ClassVar[str] = "start-offer"
    name: str
    targets: list[StartTarget] = field(default_factory=list)


@dataclass(frozen=True)
class Notice(Message):
    """One line for every view."""

    OP: ClassVar[str] = "notice"
    level: str  # "info", "warning", "error"
    text: str
    name: str | None = None
    attempt: bool = False  # an action that changed nothing (its switchover's ``attempt`` says it too)


@dataclass(frozen=True)
class Heartbeat(Message):
    """The engine is alive: sent to a view that has had nothing else for ``interval`` s.
    A view that hears nothing for a few intervals marks the engine silent (stopped, hung)."""

    OP: ClassVar[str] = "heartbeat"
    at: float  # the engine's wall clock
    interval: float = 1.0


@dataclass(frozen=True)
class Goodbye(Message):
    """The engine is stopping on purpose (``migtui engine stop``, SIGTERM): the last line
    each view gets before its link closes, so that a view tells a stop from a crash or a
    dropped link without racing the engine's exit."""

    OP: ClassVar[str] = "goodbye"
    why: str  # "stopped by migtui engine stop on pts/3 (pid 4242)", "stopped (SIGTERM)"


REQUESTS: tuple[type[Message], ...] = (Hello, Watch, Subscribe, Request, Start, Status, Guarding, Stop)
EVENTS: tuple[type[Message], ...] = (Welcome, Error, Reply, Monitor, Unwatched, Feed, Session, Switchover, Pause,
                                     Controls, Notice, Heartbeat, Convergence, StartOffer, ConvergePolicy, Goodbye)
MESSAGES: dict[str, type[Message]] = {cls.OP: cls for cls in (*REQUESTS, *EVENTS)}
# Actions a view may request; each changes a VM (refused for read-only views). The remedies
# (bandwidth, switchover-bandwidth, downtime, throttle) set a migration parameter, dirty-limit
# limits the vCPUs' dirty rate, postcopy switches the migration to postcopy; write-blocking
# switches the mirrors of a start to write-blocking (a start itself is its own request: Start).
ACTIONS = frozenset({"resume", "abort", "arm", "disarm", "measure", "write-blocking", *REMEDY_ACTIONS})
