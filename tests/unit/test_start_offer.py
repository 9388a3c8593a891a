"""Starting a migration, pure parts: what is offered per destination (from real QEMU 7.2 and
10.0 replies), every typed value checked before anything is sent (one line naming it), the
plan and its summary, the address forms QEMU gets, the disks of query-block, and a mirror's
NBD target read from the block graph."""

from __future__ import annotations

import pytest
from replay import features, reply

from migtui.model.blockjobs import mirror_targets
from migtui.model.disks import parse_disks
from migtui.model.units import BadValue
from migtui.model.uri import parse_socket_address
from migtui.workflow.session import MonitorSession
from migtui.workflow.start import Choices, offer, plan, summary, waiting_for_migration

MiB = 1 << 20


def idle(version: str, side: str) -> MonitorSession:
    session = MonitorSession.offline(side, features=features(version))
    for command, label in (("query-migrate-capabilities", "default"), ("query-migrate-parameters", "default"),
                           ("query-migrate", "none"),
                           ("query-status", "incoming-listening" if side == "dst" else "before")):
        session.apply_reply(command, reply(version, f"idle/{side}-{command}-{label}"), now=1.0)
    return session


def disks(version: str, side: str) -> list:
    return parse_disks(reply(version, f"start/{side}-query-block-lab"))


def target(version: str, monitored: bool = True):
    src, dst = idle(version, "src"), idle(version, "dst")
    return offer(src, dst if monitored else None, disks(version, "src"), disks(version, "dst"))


def test_query_block_gives_the_disks_and_their_devices(version: str) -> None:
    found = {d.node: d for d in disks(version, "src")}
    assert set(found) == {"boot0", "data0"}
    assert found["data0"].device == "data0-dev" and found["data0"].size == 16 * MiB
    assert not found["data0"].read_only


def test_offered_only_what_both_qemus_have(version: str) -> None:
    t = target(version)
    caps = {c.name: c for c in t.capabilities}
    assert caps["pause-before-switchover"].default == "on"
    assert {"auto-converge", "postcopy-ram", "multifd", "xbzrle"} <= set(caps)
    assert ("switchover-ack" in caps) == ("dirty-limit" in caps) == (version != "7.2")  # 8.1+
    params = {p.name for p in t.parameters}
    assert {"max-bandwidth", "downtime-limit", "multifd-channels"} <= params
    assert ("avail-switchover-bandwidth" in params) == (version != "7.2")  # 8.2+
    assert t.channels == (version != "7.2")  # migrate takes channels (9.0+)
    assert [(d.node, d.target, d.why) for d in t.disks] == [("boot0", "boot0", ""), ("data0", "data0", "")]
    typed = target(version, monitored=False)
    assert typed.name == "" and typed.disks == [] and not typed.channels
    assert not {c.name for c in typed.capabilities} & {"postcopy-ram", "multifd", "switchover-ack"}


def test_dirty_limit_only_under_kvm() -> None:
    src, dst = idle("10.0", "src"), idle("10.0", "dst")
    assert src.kvm is None and "dirty-limit" in {c.name for c in offer(src, dst, [], []).capabilities}  # not known
    assert src.apply_reply("query-kvm", {"enabled": True, "present": True}) == {"config"}  # the session's fact
    assert src.kvm is True and "dirty-limit" in {c.name for c in offer(src, dst, [], []).capabilities}
    src.apply_reply("query-kvm", {"enabled": False, "present": True})
    assert src.kvm is False and "dirty-limit" not in {c.name for c in offer(src, dst, [], []).capabilities}


def test_a_destination_waits_only_with_incoming() -> None:
    dst = idle("7.2", "dst")
    assert waiting_for_migration(dst)
    assert not waiting_for_migration(idle("7.2", "src"))


def test_the_plan_of_a_storage_start_and_its_summary(version: str) -> None:
    t = target(version)
    choices = Choices("dst", "unix:/run/dst.migrate", ("pause-before-switchover", "multifd"),
                      {"max-bandwidth": "1 Gbit/s", "downtime-limit": "0.5 s", "multifd-channels": "4"}, ("data0",))
    p = plan("src", t, choices)
    assert p.capabilities["pause-before-switchover"] and p.capabilities["multifd"] and p.capabilities["events"]
    assert p.capabilities["xbzrle"] is False
    assert p.destination_capabilities == {"events": True, "postcopy-ram": False, "multifd": True,
                                          **({"switchover-ack": False} if version != "7.2" else {})}
    assert p.parameters == {"max-bandwidth": 125_000_000, "downtime-limit": 500, "multifd-channels": 4}
    assert p.destination_parameters == {"multifd-channels": 4}
    assert [(m.node, m.target, m.job, m.client_node) for m in p.mirrors] == [
        ("data0", "data0", "migtui-mirror-data0", "migtui-nbd-data0")]
    assert p.nbd.uri == "unix:/run/dst.migrate.nbd"
    lines = summary(p)
    assert any("disk data0 (16.0 MiB) → dst data0 over NBD unix:/run/dst.migrate.nbd" in line for line in lines)
    assert lines[-2] == f"src: migrate to unix:/run/dst.migrate ({'channels' if version != '7.2' else 'uri'})"


def test_switchover_ack_brings_the_return_path_on_both() -> None:
    p = plan("src", target("10.0"), Choices("dst", "tcp:[::1]:4444", ("switchover-ack",)))
    assert p.capabilities["return-path"] and p.destination_capabilities["return-path"]
    assert p.address.uri == "tcp:[::1]:4444" and p.nbd.uri == "tcp:[::1]:4445"
    assert p.address.channels() == [{"channel-type": "main", "addr": {"transport": "socket", "type": "inet",
                                                                      "host": "::1", "port": "4444"}}]


@pytest.mark.parametrize(("choices", "says"), [
    (Choices("dst", "nbd:x"), "address: 'nbd:x' is not an address: it takes unix:/ABSOLUTE/PATH or tcp:HOST:PORT"),
    (Choices("dst", "unix:relative.sock"), "is not an absolute path"),
    (Choices("dst", "tcp:host:99999"), "port '99999' is not a number from 1 to 65534"),
    (Choices("dst", "tcp:::1:4444"), "an IPv6 host goes in brackets"),
    (Choices("dst", "unix:/" + "x" * 120), "a unix socket's takes at most 107"),
    (Choices("dst", "unix:/a", parameters={"max-bandwidth": "fast"}), "max-bandwidth: 'fast' is not a value"),
    (Choices("dst", "unix:/a", parameters={"downtime-limit": "3 h"}), "downtime-limit: unknown unit 'h'"),
    (Choices("dst", "unix:/a", ("multifd",), {"multifd-channels": "0"}), "multifd-channels: '0' is not a number"),
    (Choices("dst", "unix:/a", (), {"multifd-channels": "8"}), "multifd-channels: only with multifd on"),
    (Choices("dst", "unix:/a", ("x-colo",)), "x-colo: not offered here"),
    (Choices("dst", "unix:/a", (), {}, ("data0",)), "disks: mirroring needs pause-before-switchover"),
    (Choices("dst", "unix:/a", ("pause-before-switchover",), {}, ("sda",)), "disk sda: not a disk of the source"),
    (Choices("elsewhere", "unix:/a"), "destination: elsewhere is not offered"),
])
def test_a_value_that_cannot_be_sent_is_one_line(choices: Choices, says: str) -> None:
    with pytest.raises(BadValue) as err:
        plan("src", target("7.2"), choices)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_typed_uri_needs_one_and_takes_no_disks() -> None:
    t = target("7.2", monitored=False)
    with pytest.raises(BadValue, match="URI: type where the destination listens"):
        plan("src", t, Choices(""))
    with pytest.raises(BadValue, match="disks: mirrored only to a monitored destination"):
        plan("src", t, Choices("", "tcp:10.0.0.2:4444", ("pause-before-switchover",), {}, ("data0",)))
    assert plan("src", t, Choices("", "tcp:10.0.0.2:4444")).address == parse_socket_address("tcp:10.0.0.2:4444")


def test_a_parameter_left_as_it_was_is_not_sent() -> None:
    t = target("7.2")
    left = {p.name: p.default for p in t.parameters}
    assert plan("src", t, Choices("dst", "unix:/a", (), left)).parameters == {}


def test_a_mirrors_nbd_target_from_the_block_graph() -> None:
    graph = {"nodes": [{"id": 1, "type": "block-job", "name": "mirror-data0"},
                       {"id": 2, "type": "block-driver", "name": "data0-target"},
                       {"id": 3, "type": "block-driver", "name": "data0"}],
             "edges": [{"parent": 1, "child": 2, "name": "target"}, {"parent": 1, "child": 3, "name": "source"}]}
    assert mirror_targets(graph, ["mirror-data0"]) == {"mirror-data0": "data0-target"}
    assert mirror_targets(graph, ["other"]) == {}
    assert mirror_targets("junk", ["mirror-data0"]) == {}
