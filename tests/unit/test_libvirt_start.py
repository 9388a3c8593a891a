"""Starting a migration of a libvirt domain, pure parts: the offer towards another libvirt host,
the operator's choices as libvirt's flags and typed parameters (migrateToURI3), one line
for what cannot be sent, and the summary confirmed (``m`` on the start screen, at 80x24)."""

from __future__ import annotations

import pytest
from textual.app import App

from migtui.model.units import BadValue
from migtui.tui.screens.start import StartScreen
from migtui.workflow.libvirt_start import offer, plan, summary
from migtui.workflow.start import Choices

MiB = 1 << 20


def test_the_plan_names_libvirts_flags_and_parameters() -> None:
    target = offer("h2", [("hda", 1 << 20), ("vda", 16 * MiB)], 0)
    assert (target.name, target.via, [d.node for d in target.disks]) == ("h2", "libvirt", ["hda", "vda"])
    chosen = plan("h1/vm", target, Choices("h2", "tcp://10.0.0.2:49152", ("postcopy-ram",),
                                           {"max-bandwidth": "100 MiB/s"}, ("vda",)))
    assert chosen.flags == ("LIVE", "PEER2PEER", "PERSIST_DEST", "POSTCOPY", "NON_SHARED_DISK")
    assert chosen.params() == {"migrate_uri": "tcp://10.0.0.2:49152", "listen_address": "10.0.0.2",
                               "bandwidth": 100, "migrate_disks": ["vda"]}
    lines = summary(chosen)
    assert "migrateToURI3" in lines[0] and "POSTCOPY" in lines[0] and any("vda" in line for line in lines)


def test_shared_storage_copies_nothing_and_libvirt_picks_the_uri() -> None:
    chosen = plan("h1/vm", offer("h2", [("vda", None)], 64 * MiB), Choices("h2", "", (), {"max-bandwidth": "64 MiB/s"}))
    assert "NON_SHARED_DISK" not in chosen.flags and chosen.params() == {"bandwidth": 64}
    assert any("shared" in line for line in summary(chosen))


@pytest.mark.parametrize(("choices", "says"), [
    (Choices("h2", "127.0.0.1"), "tcp://HOST"),
    (Choices("h2", "tcp://h:port"), "tcp://HOST"),
    (Choices("h2", capabilities=("pause-before-switchover",)), "not offered for a libvirt domain"),
    (Choices("h2", parameters={"downtime-limit": "1 s"}), "not offered for a libvirt domain"),
    (Choices("h2", disks=("sdz",)), "disk sdz"),
    (Choices("h3"), "not a libvirt host offered"),
])
def test_what_cannot_be_sent_is_one_line(choices: Choices, says: str) -> None:
    with pytest.raises(BadValue, match=says) as raised:
        plan("h1/vm", offer("h2", [("vda", None)], 0), choices)
    assert "\n" not in str(raised.value)


async def test_the_start_screen_offers_a_libvirt_host_with_its_disks_ticked() -> None:
    results: list[Choices | None] = []

    class Host(App[None]):
        def on_mount(self) -> None:
            target = offer("h2", [("hda", 1 << 20), ("vda", 16 * MiB)], 0)
            self.push_screen(StartScreen("h1/vm", [target]), results.append)

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, StartScreen)
        assert screen.choices() == Choices("h2", "", (), {"max-bandwidth": ""}, ("hda", "vda"))
        check = str(screen.query_one("#start-check").render())
        assert "valid" in check, check
        screen.query_one("#start-address").value = "127.0.0.1"  # type: ignore[attr-defined]
        await pilot.pause()
        assert "tcp://HOST" in str(screen.query_one("#start-check").render())
        screen.query_one("#start-address").value = "tcp://127.0.0.1"  # type: ignore[attr-defined]
        await pilot.pause()
        screen.action_review()
        await pilot.pause()
        assert app.screen.id == "confirm-start"
        shown = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "migrateToURI3" in shown and "hda, vda" in shown, shown
        await pilot.press("m")
        await pilot.pause()
    assert results == [Choices("h2", "tcp://127.0.0.1", (), {"max-bandwidth": ""}, ("hda", "vda"))]
