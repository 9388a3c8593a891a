"""The convergence advisor without QEMU: the passes it folds, its verdicts on recorded real
runs of every recorded QEMU (tests/fixtures/qmp/<version>/tui/: the lab's stuck scenario, and
the storage scenario, which converges), the wording of a calc-dirty-rate pre-check, the
values a remedy takes, and what a view shows of it all."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from replay import tui_run

from migtui.address import parse_address
from migtui.errors import MigtuiError
from migtui.model.advisor import (
    CONVERGING,
    DOWNTIME,
    NOT_CONVERGING,
    UNKNOWN,
    Advice,
    Settings,
    advise,
    is_news,
)
from migtui.model.dirtyrate import DirtyRateInfo
from migtui.model.units import (
    BadValue,
    bandwidth_text,
    downtime_text,
    parse_bandwidth,
    parse_downtime,
    parse_percent,
    round_up_bandwidth,
    round_up_downtime,
)
from migtui.protocol import messages as m
from migtui.view.remote import RemoteSession
from migtui.workflow.session import MonitorSession
from migtui.workflow.status import Snapshot, no_verdict

MiB = 1024 * 1024


def advices(version: str, scenario: str) -> list[tuple[MonitorSession, Advice, int]]:
    """The source of a recorded run, fed one input at a time: the advice after each, with
    the pass QEMU was in."""
    session = MonitorSession.offline("src")
    seen = []
    for entry in (e for e in tui_run(version, scenario) if e["side"] == "src"):
        session.replay([entry])
        settings = Settings.of(session.parameters, session.state.capabilities)
        seen.append((session, advise(session.state, settings), session.state.pass_number or 0))
    return seen


# ---------------------------------------------------------------------- the passes


def test_each_pass_starts_at_qemus_own_stamp_with_the_ram_left_then(version: str) -> None:
    session = MonitorSession.offline("src")
    session.replay([e for e in tui_run(version, "stuck") if e["side"] == "src"])
    passes = session.state.passes.passes
    assert [p.number for p in passes] == list(range(1, len(passes) + 1)) and len(passes) >= 4
    assert all(p.exact for p in passes)  # every MIGRATION_PASS event was seen
    assert all(p.duration is not None and p.duration > 1 for p in passes[:-1])
    # The guest rewrites 16 MiB over and over: each sync finds all of it dirty again.
    assert all(15 * MiB <= (p.remaining or 0) <= 17 * MiB for p in passes[1:]), [p.remaining for p in passes]


def test_a_pass_first_seen_in_its_middle_has_no_ram_left_at_its_start(version: str) -> None:
    """migtui connected during pass 3: what that pass had left when it began is unknown (the
    poll saw it half sent), so it is no evidence; the next syncs are."""
    entries = [e for e in tui_run(version, "stuck") if e["side"] == "src"]
    third = next(i for i, e in enumerate(entries) if e["kind"] == "reply" and e["command"] == "query-migrate"
                 and e["return"].get("ram", {}).get("dirty-sync-count") == 3)
    session = MonitorSession.offline("src")
    session.replay([e for e in entries[:third] if e["kind"] == "reply" and e["command"] != "query-migrate"])
    session.replay(entries[third + 1:])  # joined a poll late: the pass is well under way
    passes = session.state.passes.passes
    assert passes[0].number == 3 and passes[0].joined and passes[0].remaining is None
    assert all(p.remaining is not None and p.remaining > 15 * MiB for p in passes[1:])
    advice = advise(session.state, Settings.of(session.parameters, session.state.capabilities))
    assert advice.verdict == UNKNOWN, advice  # one sync seen since: no evidence yet


def test_a_new_migration_starts_a_new_log() -> None:
    session = MonitorSession.offline("src")
    session.replay([e for e in tui_run("7.2", "stuck") if e["side"] == "src"])
    assert session.state.passes.passes
    session.apply_reply("query-migrate", {"status": "setup"}, now=2e9)
    assert session.state.passes.passes == ()


# ---------------------------------------------------------------------- verdicts on real runs


def test_the_stuck_run_is_not_converging_within_three_passes_and_says_why_in_numbers(version: str) -> None:
    seen = advices(version, "stuck")
    verdicts = [(a.verdict, number) for _, a, number in seen]
    first = next(i for i, (verdict, _) in enumerate(verdicts) if verdict == NOT_CONVERGING)
    assert verdicts[first][1] <= 3
    assert all(v == UNKNOWN for v, _ in verdicts[:first])  # no word before there is evidence
    assert CONVERGING not in {v for v, _ in verdicts}
    advice = seen[first][1]
    assert re.fullmatch(r"remaining RAM not shrinking over 2 passes \(16, 16 MiB\); the guest dirties [\d.]+ MiB/s,"
                        r" as fast as QEMU sends \([\d.]+ MiB/s\); expected downtime [\d.]+ s > limit 300 ms;"
                        r" capped by max-bandwidth 4 MiB/s", advice.reason), advice.reason
    assert advice.expected_downtime_ms is not None and 2500 < advice.expected_downtime_ms < 5000
    assert advice.eta_s is None
    lines = [r.line() for r in advice.remedies]
    assert lines[0].startswith("raise max-bandwidth 4 MiB/s → ") and "fit the 300 ms limit" in lines[0]
    downtime = next(r for r in advice.remedies if r.action == DOWNTIME)
    assert downtime.current == "300 ms" and parse_downtime(downtime.value) > advice.expected_downtime_ms
    assert "the guest pauses up to" in downtime.cost
    assert lines[-1].startswith("abort the migration")
    # 8.2+ has avail-switchover-bandwidth; 7.2 does not, and no throttle without auto-converge.
    actions = [r.action for r in advice.remedies]
    assert actions == (["bandwidth", "downtime", "abort"] if version == "7.2"
                       else ["bandwidth", "switchover-bandwidth", "downtime", "abort"])


def test_a_converging_run_is_never_called_not_converging_and_gets_an_eta(version: str) -> None:
    seen = advices(version, "storage")
    verdicts = [a.verdict for _, a, _ in seen]
    assert NOT_CONVERGING not in verdicts
    converging = [(a, number) for _, a, number in seen if a.verdict == CONVERGING and a.eta_s is not None]
    assert converging and converging[0][1] == 3  # once 2 passes are done
    advice = converging[0][0]
    assert re.match(r"remaining RAM shrinking ~\d+ % a pass \([\d.]+, [\d.]+ MiB\); ETA [\d.]+ m?s to the switchover",
                    advice.reason), advice.reason
    assert advice.remedies == []
    assert seen[-1][1].reason.startswith("migration completed in ")


def test_the_eta_after_two_passes_lands_near_the_recorded_switchover(version: str) -> None:
    """The recorded run: the first ETA once two passes are done, against when QEMU stopped the
    guest for the switchover (its own stamp). The live measure is tests/engine/test_advisor_lab.py."""
    seen = advices(version, "storage")
    advice = next(a for _, a, _ in seen if a.verdict == CONVERGING and a.eta_s is not None)
    session = seen[-1][0]
    switchover = next(c.time for c in session.state.status_changes if c.status == "pre-switchover")
    assert advice.at is not None and advice.eta_s is not None
    actual = switchover - advice.at
    assert abs(advice.eta_s - actual) <= 0.3 * actual, (advice.eta_s, actual)


def test_a_destination_is_judged_on_its_source() -> None:
    dst = MonitorSession.offline("dst")
    dst.replay([e for e in tui_run("7.2", "stuck") if e["side"] == "dst"])
    advice = advise(dst.state, Settings.of(dst.parameters, dst.state.capabilities))
    assert advice.verdict == UNKNOWN and advice.headline == "destination", advice


def test_unknown_until_there_is_evidence() -> None:
    state = MonitorSession.offline("src").state
    assert advise(state, Settings()).reason == "no migration: a verdict needs a migration's passes"
    assert advise(state, Settings(), connected=False).verdict == UNKNOWN
    assert advise(state, Settings(), measuring=True).headline == "measuring…"


def test_a_dirty_rate_measurement_is_an_estimate_with_its_window_never_a_verdict(version: str) -> None:
    session = MonitorSession.offline("src")
    session.replay([e for e in tui_run(version, "measure") if e["side"] == "src"])
    advice = advise(session.state, Settings.of(session.parameters, session.state.capabilities))
    assert advice.verdict == UNKNOWN
    assert re.fullmatch(r"no migration; calc-dirty-rate: ~[\d.]+ MiB/s dirtied over 1.0 s \(page-sampling,"
                        r" max-bandwidth [\d.]+ [MG]iB/s\): an estimate, not a verdict; the passes of a migration"
                        r" will tell", advice.reason), advice.reason
    # Above max-bandwidth, still no verdict (the lab's converge run measured 6 MiB/s against 4 and converged).
    state = MonitorSession.offline("src").state
    state.apply_dirty_rate(DirtyRateInfo.from_qmp({"status": "measured", "dirty-rate": 6, "calc-time": 1}), 1.0)
    over = advise(state, Settings(max_bandwidth=4 * MiB))
    assert over.verdict == UNKNOWN and "may not converge" not in over.reason
    assert over.headline == "estimate ~6.0 MiB/s dirtied over 1.0 s"
    # QEMU 8.2+ may measure in milliseconds.
    state.apply_dirty_rate(DirtyRateInfo.from_qmp({"status": "measured", "dirty-rate": 6, "calc-time": 500,
                                                   "calc-time-unit": "millisecond", "start-time": 9}), 2.0)
    assert "over 500 ms" in advise(state, Settings()).reason


def test_status_json_has_exactly_the_documented_keys() -> None:
    advice = advices("7.2", "stuck")[-30][1]
    data = advice.to_json()
    assert list(data) == ["verdict", "reason", "eta_s", "expected_downtime_ms", "remedies"]
    assert all(isinstance(r, str) for r in data["remedies"])
    assert no_verdict()["verdict"] == UNKNOWN and "no engine" in no_verdict()["reason"]
    # The engine's advice survives `migtui status` rebuilding the snapshot from its answer.
    snap = Snapshot.from_json(parse_address("src=/x.qmp"), {"migration": {"raw": {"status": "active"},
                                                                        "convergence": data}})
    assert snap.to_json()["migration"]["convergence"] == data


# ---------------------------------------------------------------------- values


@pytest.mark.parametrize(("text", "value"), [
    ("54 MiB/s", 54 * MiB), ("54MiB/s", 54 * MiB), ("54", 54 * MiB), ("54 MiB", 54 * MiB),
    ("1.5 GiB/s", 3 * 512 * MiB), ("10 Gbit/s", 1_250_000_000), ("800 Mbit/s", 100_000_000),
    ("512 KiB/s", 512 * 1024),
])
def test_bandwidths_in_mib_or_gbit(text: str, value: int) -> None:
    assert parse_bandwidth(text) == value


@pytest.mark.parametrize(("text", "value"), [("500 ms", 500), ("500", 500), ("5 s", 5000), ("1.5s", 1500),
                                             ("2000 s", 2_000_000)])
def test_downtimes_in_ms_or_s(text: str, value: int) -> None:
    assert parse_downtime(text) == value


@pytest.mark.parametrize(("reader", "text", "says"), [
    (parse_bandwidth, "fast", "max-bandwidth: 'fast' is not a value: it takes a rate such as 54 MiB/s or 10 Gbit/s"),
    (parse_bandwidth, "0", "max-bandwidth: 0 is no bandwidth"),
    (parse_bandwidth, "5 furlongs", "max-bandwidth: unknown unit 'furlongs'"),
    (parse_downtime, "5 h", "downtime-limit: unknown unit 'h'"),
    (parse_downtime, "2001 s", "downtime-limit: 2001 s is out of range: QEMU takes 1 ms to 2000 s"),
    (parse_downtime, "-5 s", "downtime-limit: '-5 s' is not a value"),
])
def test_a_bad_value_is_refused_in_one_line_naming_the_parameter(reader: Any, text: str, says: str) -> None:
    with pytest.raises(BadValue) as caught:
        reader(text)
    assert str(caught.value).startswith(says) and "\n" not in str(caught.value)
    assert isinstance(caught.value, MigtuiError)


def test_percentages_and_what_values_read_back_as() -> None:
    assert parse_percent("50 %", "cpu-throttle-initial") == 50
    with pytest.raises(BadValue, match="cpu-throttle-initial: 100 is out of range"):
        parse_percent("100", "cpu-throttle-initial")
    for value in (4 * MiB, 66 * MiB, 3 * 512 * MiB):
        assert parse_bandwidth(bandwidth_text(value)) == value
    for ms in (300, 5000, 4500):
        assert parse_downtime(downtime_text(ms)) == ms
    assert round_up_bandwidth(53.4 * MiB) == 54 * MiB and round_up_downtime(4960) == 5000
    assert round_up_downtime(3_000_000) == 2_000_000


# ---------------------------------------------------------------------- a view's controls


def test_a_read_only_view_offers_no_remedy_and_says_why() -> None:
    client: Any = type("Client", (), {"read_only": True, "clock": staticmethod(lambda: 0.0), "sessions": {}})()
    view = RemoteSession(client, "src", parse_address("src=/tmp/src.qmp"))
    view.apply_controls(m.Controls("src", {"downtime": m.Control(True, "", "raise downtime-limit ..."),
                                           "bandwidth": m.Control(False, "not proposed")}))
    downtime = view.control("downtime")
    assert downtime.allowed is False  # never in this view: not offered (issue 16), the key says why
    assert downtime.reason == "read-only: migtui will not change downtime-limit of src (a read-only view)"
    assert view.control("bandwidth").allowed is False  # nothing offered: not shown at all


def test_an_advice_is_news_for_its_words_and_figures_and_for_the_moment_of_an_eta() -> None:
    stuck = Advice(NOT_CONVERGING, "remaining RAM not shrinking", "not converging", at=100.0,
                   expected_downtime_ms=3900.0)
    assert not is_news(stuck, stuck)
    assert not is_news(stuck, replace(stuck, at=101.0))  # the same words, a second later
    assert is_news(stuck, replace(stuck, at=101.0, expected_downtime_ms=3800.0))
    assert is_news(stuck, replace(stuck, reason="remaining RAM shrinking"))
    eta = Advice(CONVERGING, "shrinking", "converging, ETA 6 s", eta_s=6.0, at=100.0)
    assert is_news(eta, replace(eta, at=101.0))  # 6 s from 101 is not 6 s from 100
