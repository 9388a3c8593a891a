"""Acting on libvirt domains from the dashboard's engine path (issue 15): the ``6`` remedy
(postcopy) as libvirt's migrateStartPostCopy, and ``m`` (a start) as libvirt's migrateToURI3
towards the other connected host. Two real libvirt 9.0 daemons (tests/libvirt_lab.py), each
action asked as a view asks it (``Engine.request``, ``EngineStart.request``), and ``m`` once
as a person would: the real dashboard in tmux at 80x24.

Like test_libvirt_api.py these run once, on the system QEMU, and need root and libvirt.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from conftest import until
from libvirt_lab import LibvirtLab, clear_hosts, lab_hosts
from tmux_util import Tmux, bold_text, styled_row

from migtui.engine.control import POSTCOPY_OFF
from migtui.engine.engine import Engine, Watched
from migtui.protocol import messages as m
from migtui.workflow.policy import Policy

pytestmark = [pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def hosts() -> Iterator[LibvirtLab]:
    yield from lab_hosts()


@pytest.fixture
def lab(hosts: LibvirtLab) -> Iterator[LibvirtLab]:
    yield hosts
    clear_hosts(hosts, undefine=True)  # a start leaves the domain defined there (PERSIST_DEST)


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    e = Engine(persist=True)
    try:
        yield e
    finally:
        await e.stop()


class View:
    """The engine's side of an attached view, as ``Engine.request`` sees it (server.View)."""

    def __init__(self) -> None:
        self.label, self.read_only, self.subscribed = "test view", False, False

    def send(self, message: Any) -> None:
        pass


async def watched(engine: Engine, name: str) -> Watched:
    await until(lambda: name in engine.watched and engine.watched[name].session.connected, 30, f"{name} watched",
                lambda: f"watched: {sorted(engine.watched)}")
    return engine.watched[name]


def job_state(w: Watched) -> str:
    """What a libvirt domain's monitor holds of its job (what its query-migrate replies
    come from), for a failure's message."""
    dom = w.session.monitor
    return ", ".join(f"{key}={getattr(dom, key, '?')!r}"
                     for key in ("qemu_status", "_job_running", "_aborted", "completed", "dom"))


def control(w: Watched, action: str) -> m.Control | None:
    return w.last_controls.actions.get(action) if w.last_controls is not None else None


def virsh_migrate(lab: LibvirtLab, guest: Any, *extra: str) -> asyncio.Task[Any]:
    """``virsh migrate`` A -> B of the guest's RAM (its disks not copied: --unsafe), capped at
    4 MiB/s: the guest, dirtying 8 MiB over and over, does not converge (a pass of 2 s)."""
    return asyncio.create_task(asyncio.to_thread(
        lab.a.virsh, "migrate", "--live", "--p2p", "--unsafe", "--bandwidth", "4", *extra, guest.name, lab.b.uri,
        "--migrateuri", "tcp://127.0.0.1", "--listen-address", "127.0.0.1", "--xml", str(guest.dest_xml),
        timeout=180, check=False))


async def dirtying(lab: LibvirtLab, name: str) -> None:
    """Until the guest has booted and swept its range once (its 'A' on the serial port)."""
    await until(lambda: lab.swept(name), 60, "the guest's first sweep")


async def test_postcopy_remedy_through_libvirt_refused_then_switched(lab: LibvirtLab, engine: Engine) -> None:
    name = "migtui-lvpc"
    guest = lab.start_guest(name, dirty_mib=8, disk_mib=16)
    await engine.connect(lab.a.uri, "a", (), Policy(), read_only=False, interval=0.5)
    await engine.connect(lab.b.uri, "b", (), Policy(), read_only=False, interval=0.5)
    src = await watched(engine, f"a/{name}")
    await dirtying(lab, name)

    # A migration started elsewhere without --postcopy: libvirt's API does not say so; `6` is offered,
    # saying libvirt may refuse, and libvirt's refusal makes it not-now for this migration, with its reason.
    plain = virsh_migrate(lab, guest)
    await until(lambda: (c := control(src, "postcopy")) is not None and c.allowed is True, 90,
                "the postcopy remedy offered (the migration not converging)",
                lambda: f"{control(src, 'postcopy')} {src.session.state.migration_status}"
                        f" {engine.control.message(src).advice.reason}")
    offered = control(src, "postcopy")
    assert offered is not None and "migrateStartPostCopy" in offered.does and "--postcopy" in offered.does, offered
    refused = await engine.request(View(), "postcopy", src.name)
    assert not refused.ok and "libvirt refused migrateStartPostCopy" in (refused.error or ""), refused
    assert "VIR_MIGRATE_POSTCOPY" in (refused.error or "") and "\n" not in (refused.error or ""), refused
    await until(lambda: (c := control(src, "postcopy")) is not None and c.allowed is None
                and "VIR_MIGRATE_POSTCOPY" in c.reason, 15, "postcopy not-now with libvirt's reason",
                lambda: str(control(src, "postcopy")))
    aborted = await engine.request(View(), "abort", src.name)
    assert aborted.ok, aborted
    assert (await plain).returncode != 0
    assert lab.domstate(lab.a, guest) == "running"
    await until(lambda: src.session.state.migration_status == "cancelled", 30, "the cancel seen",
                lambda: f"{src.session.state.migration_status}: {src.session.state.status_changes};"
                        f" the domain's job: {job_state(src)}")
    assert engine.control.no_postcopy(src) == "", "what libvirt said of that migration stays with it"

    # With --postcopy: `6` from the engine path switches it through libvirt; the destination takes over.
    allowed = virsh_migrate(lab, guest, "--postcopy")
    await until(lambda: (c := control(src, "postcopy")) is not None and c.allowed is True, 90,
                "the postcopy remedy offered again", lambda: str(control(src, "postcopy")))
    switched = await engine.request(View(), "postcopy", src.name)
    assert switched.ok and "migrateStartPostCopy" in (switched.message or ""), switched
    migrated = await allowed
    assert migrated.returncode == 0, migrated.stderr
    assert lab.domstate(lab.b, guest) == "running"
    assert "postcopy-active" in [c.status for c in src.session.state.status_changes]
    dst = await watched(engine, f"b/{name}")
    await until(lambda: dst.session.state.migration.status == "completed", 30, "the destination completed",
                lambda: str(dst.session.state.migration))


async def test_start_a_libvirt_migration_to_the_other_host(lab: LibvirtLab, engine: Engine) -> None:
    name = "migtui-lvstart"
    # Libvirt's own monitor only, as in production: no destination XML needed.
    guest = lab.start_guest(name, dirty_mib=4, disk_mib=16, qmp=False)
    await engine.connect(lab.a.uri, "a", (), Policy(), read_only=False, interval=0.5)
    src = await watched(engine, f"a/{name}")
    await until(lambda: (c := control(src, "start")) is not None and c.allowed is None, 15,
                "no destination yet", lambda: str(control(src, "start")))
    assert "no other libvirt host" in (control(src, "start") or m.Control(None)).reason
    await engine.connect(lab.b.uri, "b", (), Policy(), read_only=False, interval=0.5)

    # The offer: host b, its disks (each copied unless unticked), libvirt's flags.
    def target() -> Any:
        targets = engine.starts.message(src).targets
        return targets[0] if targets and targets[0].disks else None

    await until(lambda: target() is not None, 15, "the offer of host b with the disks",
                lambda: str(engine.starts.message(src)))
    offer = target()
    assert (offer.name, offer.via, [d.node for d in offer.disks]) == ("b", "libvirt", ["hda", "vda"]), offer
    assert [d.size for d in offer.disks] == [1 << 20, 16 << 20], offer.disks
    assert {c.name for c in offer.capabilities} == {"postcopy-ram", "auto-converge"}, offer
    await until(lambda: (c := control(src, "start")) is not None and c.allowed is True, 15, "start offered",
                lambda: str(control(src, "start")))

    # A typo in the migration URI: refused before anything is sent, in one line.
    bad = await engine.starts.request(View(), m.Start(0, src.name, "b", "127.0.0.1", disks=["hda", "vda"]))
    assert not bad.ok and "tcp://HOST" in (bad.error or ""), bad
    reply = await engine.starts.request(View(), m.Start(0, src.name, "b", "tcp://127.0.0.1", disks=["hda", "vda"]))
    assert reply.ok, reply
    # migtui asked for no postcopy: it knows, and says why `6` would not switch it.
    assert engine.control.no_postcopy(src) == POSTCOPY_OFF
    assert engine.guarding() != [], "the engine guards the migration it started"

    dst = await watched(engine, f"b/{name}")
    await until(lambda: src.session.status.word() == "gone", 60, "the source gone", lambda: src.session.status.label())
    assert "migrated away" in src.session.status.label()
    assert lab.domstate(lab.b, guest) == "running" and lab.domstate(lab.a, guest).startswith("(none")
    await until(lambda: src.session.state.migration.status == "completed", 30, "the source's final figures",
                lambda: str(src.session.state.migration))
    assert src.session.state.migration.disk is not None and src.session.state.migration.disk["transferred"] > 0
    await until(lambda: dst.session.state.migration.status == "completed", 30, "the destination's",
                lambda: str(dst.session.state.migration))
    persistent = lab.b.virsh("dominfo", name).stdout
    assert any(line.split(":")[0] == "Persistent" and line.split()[-1] == "yes" for line in persistent.splitlines())
    await until(lambda: engine.starts.under_way(src) is None, 15, "the start's end")


async def test_a_start_with_postcopy_allowed_is_switched_from_the_engine(lab: LibvirtLab, engine: Engine) -> None:
    """``m`` with postcopy-ram (VIR_MIGRATE_POSTCOPY) and 4 MiB/s: migtui knows postcopy is
    allowed, offers ``6`` once the migration does not converge, and libvirt switches it."""
    name = "migtui-lvstartpc"
    guest = lab.start_guest(name, dirty_mib=8, disk_mib=16, qmp=False)
    await engine.connect(lab.a.uri, "a", (), Policy(), read_only=False, interval=0.5)
    await engine.connect(lab.b.uri, "b", (), Policy(), read_only=False, interval=0.5)
    src = await watched(engine, f"a/{name}")
    await dirtying(lab, name)
    await until(lambda: (c := control(src, "start")) is not None and c.allowed is True, 15, "start offered",
                lambda: str(control(src, "start")))
    await until(lambda: any(t.disks for t in engine.starts.message(src).targets), 15, "the disks offered")
    reply = await engine.starts.request(View(), m.Start(0, src.name, "b", "tcp://127.0.0.1", ["postcopy-ram"],
                                                        {"max-bandwidth": "4 MiB/s"}, ["hda", "vda"]))
    assert reply.ok, reply
    assert engine.control.no_postcopy(src) == ""
    await until(lambda: (c := control(src, "postcopy")) is not None and c.allowed is True, 120,
                "the postcopy remedy offered (the migration not converging)",
                lambda: f"{control(src, 'postcopy')} {src.session.state.migration_status}"
                        f" {engine.control.message(src).advice.reason}")
    offered = control(src, "postcopy")
    assert offered is not None and "migrateStartPostCopy" in offered.does and "does not say" not in offered.does
    switched = await engine.request(View(), "postcopy", src.name)
    assert switched.ok, switched
    await until(lambda: src.session.status.word() == "gone", 90, "the source gone", lambda: src.session.status.label())
    assert "postcopy-active" in [c.status for c in src.session.state.status_changes]
    assert lab.domstate(lab.b, guest) == "running"
    await until(lambda: engine.starts.under_way(src) is None, 30, "the start's end")


def flat(screen: str) -> str:
    """The screen's words in order, frames gone (dialogs wrap at 80 columns)."""
    return " ".join(re.sub(r"[│─╭╮╰╯▔▁▊▎▌—]", " ", screen).split())


async def test_m_in_the_dashboard_migrates_a_libvirt_domain(lab: LibvirtLab, terminals: list[Tmux]) -> None:
    name = "migtui-lvtui"
    guest = lab.start_guest(name, dirty_mib=4, disk_mib=16, qmp=False)
    term = Tmux("lvstart")
    terminals.append(term)
    term.migtui("-c", f"a={lab.a.uri}", "-c", f"b={lab.b.uri}")
    shown: list[str] = []

    async def screen(pred: Any, what: str, *, styles: bool = False, seen: list[str] | None = None) -> str:
        async def holds() -> bool:
            shown[:] = [await asyncio.to_thread(term.screen, styles=styles)]
            return bool(pred(shown[0]))

        def detail() -> str:  # at the timeout: what the screen showed then, and on the way
            return (f" (seen on the way: {seen})" if seen is not None else "") + "\n" + shown[0]
        await until(holds, 60, what, detail)
        return shown[0]

    await screen(lambda s: f"a/{name}" in s and "m Migrate" in s, "the domain, m offered")
    term.keys("m")
    # A key goes to the focused field, so each is typed once the field looks focused, as a person
    # types: the screen is drawn before it takes its focus, and a focus moved by tab is not there
    # yet for the keys right behind it.
    host = "b  (libvirt host"
    ready = await screen(lambda s: host in bold_text(styled_row(s, host)), "the destination list focused "
                         "(its highlighted host bold)", styles=True)
    blurred = styled_row(ready, "migration URI")  # the address field's look without the focus
    assert blurred, ready
    term.keys("Tab")  # the migration URI (two libvirt hosts on one machine: loopback)
    await screen(lambda s: styled_row(s, "migration URI") not in ("", blurred), "the address field focused",
                 styles=True)
    term.keys("tcp://127.0.0.1")
    await screen(lambda s: "tcp://127.0.0.1" in s and "valid; enter reviews" in s, "the URI typed")
    term.keys("Enter")
    # The question's text is drawn over a few frames: wait for all of it (a loaded fresh-clone run
    # caught its title with the start screen's rows still beneath).
    await screen(lambda s: "Migrate a/" in s and all(part in flat(s) for part in ("migrateToURI3", "NON_SHARED_DISK",
                                                                                 "hda, vda")),
                 "the summary to confirm: migrateToURI3, NON_SHARED_DISK, hda, vda")
    term.keys("Enter")
    # The destination's entry appears beside the source's, which ends "gone" with its final figures.
    # "gone" (libvirt's STOPPED lifecycle event) and the final figures (its JOB_COMPLETED
    # statistics, or the next poll) reach the dashboard apart, so a frame can show the end
    # before the figures: the wait is for all of it on one screen, and the disk lines seen
    # on the way say what was drawn if it never is (a fresh-clone run once lacked the line
    # on the first screen of the end; not seen again in 7 runs, 5 of them under load).
    disk_lines: list[str] = []

    def ended(s: str) -> bool:
        for line in re.findall(r"disk [^│]*? left", s):
            if line not in disk_lines:
                disk_lines.append(line)
        return "b/migtui" in s and "last: completed" in s and "gone" in s and "disk 17.0 MiB of 17.0 MiB" in s

    await screen(ended, "the migration's end with its final disk figures", seen=disk_lines)
    assert lab.domstate(lab.b, guest) == "running" and lab.domstate(lab.a, guest).startswith("(none")
    term.keys("q")
