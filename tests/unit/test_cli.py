"""The command line as an operator types it: typos are usage errors (exit 2, one line, a
hint), help shows the default command's options and the other commands, one metavar
style everywhere, the demo takes the lab's options. No QEMU: nothing here starts one."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from migtui.commands.main import COMMANDS, build_parser


def migtui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migtui", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("argv", "says"), [
    (["stauts", "/tmp/x"], "'stauts' is neither a command nor an existing socket (did you mean 'migtui status'?)"),
    (["atach"], "(did you mean 'migtui attach'?)"),
    (["status", "vm1"], "'vm1' is neither a command nor an existing socket; a socket QEMU has not created yet"
                        " is written ./vm1 or unix:vm1"),
    (["status", "localhost:4x44"], "port '4x44' is not a number"),
    (["watch", "--bogus"], "see 'migtui watch --help'"),
    (["--bogus", "/tmp/x"], "see 'migtui --help'"),
    # The lab's and the demo's settings are checked before a QEMU starts (or a terminal is asked for).
    (["lab", "--bandwidth", "-1"], "migtui lab: --bandwidth must be positive, not -1"),
    (["lab", "--scenario", "storage", "--no-disk"], "needs the data disk: drop --no-disk"),
    (["demo", "--downtime-limit", "0"], "migtui demo: --downtime-limit must be at least 1 ms, not 0"),
    (["lab", "MIGTUI_LAB_ACCEL=foo"], "migtui lab: $MIGTUI_LAB_ACCEL must be auto, kvm or tcg, not 'foo'"),
])
def test_a_typo_is_bad_usage_in_one_line(argv: list[str], says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for word in argv:
        if word.startswith("MIGTUI_"):  # an environment variable, not an argument
            monkeypatch.setenv(*word.split("=", 1))
    result = migtui(*[word for word in argv if not word.startswith("MIGTUI_")])
    assert result.returncode == 2, result
    assert says in result.stderr and result.stderr.count("\n") == 1 and not result.stdout, result.stderr


def test_help_is_the_default_commands_help_with_the_other_commands() -> None:
    for argv in (["--help"], ["help"]):
        result = migtui(*argv)
        assert result.returncode == 0 and result.stdout.startswith("usage: migtui [-h]"), result
        assert "--interval SECONDS" in result.stdout and "--auto-resume" in result.stdout
        assert all(f"  {name} " in result.stdout for name in COMMANDS), result.stdout
    result = migtui("help", "status")
    assert result.returncode == 0 and result.stdout.startswith("usage: migtui status"), result


def test_a_command_named_says_its_own_name() -> None:
    result = migtui("watch", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: migtui watch"), result.stdout


def _metavars(parser: argparse.ArgumentParser) -> dict[str, str]:
    return {action.option_strings[0] if action.option_strings else action.dest: str(action.metavar)
            for action in parser._actions if action.metavar is not None}


def test_one_metavar_style() -> None:
    """Upper case, units as words or their symbols: SECONDS, MS, MIB, MIB/S, PATH, DIR."""
    for command in COMMANDS:
        for option, metavar in _metavars(build_parser(command)).items():
            assert metavar == metavar.upper(), f"migtui {command} {option} {metavar}"
            assert metavar != "S", f"migtui {command} {option}: write SECONDS"


def test_the_demo_takes_the_labs_options_and_each_has_help() -> None:
    demo, lab = build_parser("demo"), build_parser("lab")
    options = {o for a in lab._actions for o in a.option_strings} - {"--start", "--no-disk", "--dir"}
    assert options <= {o for a in demo._actions for o in a.option_strings}
    for parser in (demo, lab):
        assert all(a.help for a in parser._actions), [a.option_strings for a in parser._actions if not a.help]
    assert "(default: converge)" in lab.format_help() and "(default: storage)" in demo.format_help()
