"""parse_address / parse_addresses: every accepted form, every malformed one."""

from __future__ import annotations

import pytest

from migtui.address import MonitorAddress, parse_address, parse_addresses
from migtui.errors import AddressError


@pytest.mark.parametrize(
    ("arg", "name", "kind", "path", "host", "port"),
    [
        # PATH
        ("/run/vm1.qmp", "vm1", "unix", "/run/vm1.qmp", None, None),
        ("/run/vm1.sock", "vm1", "unix", "/run/vm1.sock", None, None),
        ("/run/web.monitor", "web", "unix", "/run/web.monitor", None, None),
        ("vm.sock", "vm", "unix", "vm.sock", None, None),
        ("relative/dir/db.qmp", "db", "unix", "relative/dir/db.qmp", None, None),
        ("  /tmp/a.sock  ", "a", "unix", "/tmp/a.sock", None, None),
        ("/tmp/sock dir/vm.sock", "vm", "unix", "/tmp/sock dir/vm.sock", None, None),
        # a generic basename is named after its directory
        ("/var/lib/vms/web/qmp", "web", "unix", "/var/lib/vms/web/qmp", None, None),
        ("/srv/db01/monitor.sock", "db01", "unix", "/srv/db01/monitor.sock", None, None),
        ("/srv/db01/QMP.sock", "db01", "unix", "/srv/db01/QMP.sock", None, None),
        # '=' after a slash is part of the path, not a NAME=
        ("/tmp/a=b.sock", "a-b", "unix", "/tmp/a=b.sock", None, None),
        # unix:PATH
        ("unix:/tmp/x/src.sock", "src", "unix", "/tmp/x/src.sock", None, None),
        ("unix:rel.qmp", "rel", "unix", "rel.qmp", None, None),
        ("unix:/tmp/a:1", "a-1", "unix", "/tmp/a:1", None, None),
        # HOST:PORT
        ("localhost:4444", "localhost:4444", "tcp", None, "localhost", 4444),
        ("127.0.0.1:4444", "127.0.0.1:4444", "tcp", None, "127.0.0.1", 4444),
        ("h:1", "h:1", "tcp", None, "h", 1),
        ("h:65535", "h:65535", "tcp", None, "h", 65535),
        ("db.example.org:4444", "db.example.org:4444", "tcp", None, "db.example.org", 4444),
        # tcp:HOST:PORT
        ("tcp:host.example:4444", "host.example:4444", "tcp", None, "host.example", 4444),
        ("tcp:localhost:5555", "localhost:5555", "tcp", None, "localhost", 5555),
        # [IPv6]:PORT
        ("[::1]:4444", "[::1]:4444", "tcp", None, "::1", 4444),
        ("[2001:db8::1]:5555", "[2001:db8::1]:5555", "tcp", None, "2001:db8::1", 5555),
        ("tcp:[fe80::1%eth0]:4444", "[fe80::1%eth0]:4444", "tcp", None, "fe80::1%eth0", 4444),
        # NAME= prefix on each form
        ("src=/tmp/a.sock", "src", "unix", "/tmp/a.sock", None, None),
        ("src=unix:/tmp/a", "src", "unix", "/tmp/a", None, None),
        ("dst=localhost:4445", "dst", "tcp", None, "localhost", 4445),
        ("web.1=tcp:h:1", "web.1", "tcp", None, "h", 1),
        ("v6=[::1]:4444", "v6", "tcp", None, "::1", 4444),
        ("a_b-c.9=/x", "a_b-c.9", "unix", "/x", None, None),
        ("src=dst=/a", "src", "unix", "dst=/a", None, None),
        ("x" * 32 + "=/a", "x" * 32, "unix", "/a", None, None),
    ],
)
def test_accepted(
    arg: str, name: str, kind: str, path: str | None, host: str | None, port: int | None
) -> None:
    assert parse_address(arg) == MonitorAddress(name, kind, path, host, port)


def test_target_and_display() -> None:
    unix = parse_address("src=/tmp/a.sock")
    assert unix.target == "/tmp/a.sock" and unix.display == "unix:/tmp/a.sock"
    tcp = parse_address("localhost:4444")
    assert tcp.target == ("localhost", 4444) and tcp.display == "tcp:localhost:4444"
    v6 = parse_address("[::1]:4444")
    assert v6.target == ("::1", 4444) and v6.display == "tcp:[::1]:4444"


def test_derived_names_are_safe_and_short() -> None:
    assert parse_address("/tmp/my vm!.sock").name == "my-vm"
    assert parse_address("/tmp/" + "n" * 50 + ".sock").name == "n" * 32
    assert parse_address("/").name == "vm"


@pytest.mark.parametrize(
    ("arg", "reason"),
    [
        ("", "empty monitor address"),
        ("   ", "empty monitor address"),
        ("unix:", "'unix:' needs a socket path"),
        ("host:", "port '' is not a number"),
        ("host:0", "port '0' is not a number"),
        ("host:65536", "port '65536' is not a number"),
        ("host:999999", "is not a number"),
        ("tcp:h:-1", "port '-1' is not a number"),
        ("tcp:h: 44", "is not a number"),
        ("tcp:h:abc", "port 'abc' is not a number"),
        ("localhost:4x44", "port '4x44' is not a number"),  # HOST:PORT with a typo, not a socket path
        ("tcp:h:\u0663", "is not a number"),  # a non-ASCII digit
        (":4444", "missing host"),
        ("tcp::44", "missing host"),
        ("tcp:host", "needs HOST:PORT"),
        ("tcp:", "needs HOST:PORT"),
        ("::1:4444", "IPv6 address in brackets"),
        ("tcp:::1:4444", "IPv6 address in brackets"),
        ("[::1]:", "port '' is not a number"),
        ("[::1]", "expected [IPv6]:PORT"),
        ("tcp:[::1]", "expected [IPv6]:PORT"),
        ("[]:44", "expected [IPv6]:PORT"),
        ("tcp:[]:44", "expected [IPv6]:PORT"),
        ("bad name!=/tmp/a", "name 'bad name!' must be"),
        ("x" * 33 + "=/tmp/a", "must be 1-32"),
        ("-x=/tmp/a", "name '-x' must be"),
        ("x=", "nothing after 'x='"),
        ("/tmp/a\0b", "NUL byte"),
        ("unix:/tmp/a\0b", "NUL byte"),
    ],
)
def test_malformed(arg: str, reason: str) -> None:
    with pytest.raises(AddressError) as exc:
        parse_address(arg)
    text = str(exc.value)
    assert reason in text
    assert "\n" not in text


def test_parse_addresses_makes_names_unique() -> None:
    names = [a.name for a in parse_addresses(["/a/vm.sock", "/b/vm.sock", "/c/vm.sock"])]
    assert names == ["vm", "vm-2", "vm-3"]
    assert [a.name for a in parse_addresses(["x=/a", "x=/b"])] == ["x", "x-2"]
    assert [a.name for a in parse_addresses(["vm=/a/f.sock", "/b/vm.sock"])] == ["vm", "vm-2"]
    # a generated name never takes one given explicitly
    assert [a.name for a in parse_addresses(["vm-2=/z", "/a/vm.sock", "/b/vm.sock"])] == [
        "vm-2",
        "vm",
        "vm-3",
    ]
    both = parse_addresses(["src=/a.sock", "dst=localhost:4444"])
    assert [(a.name, a.kind) for a in both] == [("src", "unix"), ("dst", "tcp")]
    assert parse_addresses([]) == []


def test_parse_addresses_raises_on_first_bad() -> None:
    with pytest.raises(AddressError, match="'tcp:h'"):
        parse_addresses(["/a.sock", "tcp:h"])
