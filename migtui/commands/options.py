"""Options several commands share: one definition each, so their help and checks agree."""

from __future__ import annotations

import argparse
import difflib
import os
import re
from dataclasses import dataclass

from ..address import MonitorAddress, parse_connect
from ..errors import AddressError, LabError, LabUsageError, MigtuiError
from ..lab.lab import ACCELS, default_accel
from ..lab.scenarios import SCENARIOS, Scenario
from ..libvirt.binding import load as load_libvirt
from ..libvirt.binding import uri_error
from ..protocol.messages import PolicyInfo
from ..workflow.converge_policy import MIN_GIB, STEPS_AFTER_PASS, steps_text
from ..workflow.policy import CONVERGE_ACTIONS, CONVERGE_MODES, DEFAULT_MAX_PAUSE_S, DEFAULT_ON_MAX_PAUSE, ON_MAX_PAUSE

MONITOR_HELP = "[NAME=](PATH | unix:PATH | HOST:PORT | tcp:HOST:PORT | [IPv6]:PORT), one per QEMU monitor"


CONNECT_HELP = ("a libvirt connection to watch every running domain of, as HOST/DOMAIN (virsh's -c: qemu:///system,"
                " qemu+ssh://HOST/system; NAME=URI names the HOST); repeatable. Default: $LIBVIRT_DEFAULT_URI"
                " when no MONITOR is given")


def add_connect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--connect", action="append", default=[], metavar="URI", help=CONNECT_HELP)
    parser.add_argument("--domain", action="append", default=[], metavar="GLOB",
                        help="with -c: only the domains whose name matches GLOB (repeatable; DOMAIN arguments too)")


def split_targets(args: argparse.Namespace) -> tuple[list[MonitorAddress], list[str]]:
    """(the libvirt connections to watch, the MONITOR words left). With a connection, a bare
    word that is no existing path is a DOMAIN name. AddressError: one line (a URI typo,
    libvirt-python missing)."""
    uris = list(args.connect)
    words = list(args.monitors)
    if not uris and not words and os.environ.get("LIBVIRT_DEFAULT_URI"):
        uris = [os.environ["LIBVIRT_DEFAULT_URI"]]
    if not uris:
        if args.domain:
            raise AddressError("--domain needs -c URI (or $LIBVIRT_DEFAULT_URI): it narrows a libvirt connection")
        return [], words
    domains = [w for w in words if _BARE.fullmatch(w) and not os.path.exists(w)]
    words = [w for w in words if w not in domains]
    connections = [parse_connect(uri, domains + list(args.domain)) for uri in uris]
    for c in connections:
        wrong = uri_error(str(c.path))
        if wrong is not None:
            raise AddressError(wrong)
    try:
        load_libvirt()
    except MigtuiError as err:  # libvirt-python is not installed: what to install, in one line
        raise AddressError(str(err)) from None
    return connections, words


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime-dir", metavar="DIR", default=None,
                        help="the engine's directory (default: $MIGTUI_RUNTIME_DIR, else $XDG_RUNTIME_DIR/migtui,"
                             " else /tmp/migtui-UID)")


def add_bell_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bell", action="store_true",
                        help="ring the terminal's bell when a guest stops before switchover (the window's"
                             " title says it anyway: '‖ src STOPPED 3.2 s')")


def add_qemu_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qemu", default=None, metavar="PATH",
                        help="the qemu-system-x86_64 to run (default: $MIGTUI_QEMU, else the one on PATH); "
                             "its qemu-img is the one beside it, if any")


def interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0.1 to 3600 seconds")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: give more than 0 and at most 86400 seconds")
    return value


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--auto-resume", action="store_true",
        help="resume each pre-switchover pause at once when its checklist passes (finish the mirrors,"
        " migrate-continue); when it fails, wait for the operator. The engine does it, view or not",
    )
    parser.add_argument(
        "--max-pause", type=_seconds, default=None, metavar="SECONDS",
        help=f"longest a pre-switchover pause may last before --on-max-pause applies (default {DEFAULT_MAX_PAUSE_S:g})",
    )
    parser.add_argument(
        "--on-max-pause", choices=ON_MAX_PAUSE, default=None,
        help="at the deadline: abort (default), resume (only if the checklist passes, else abort) or wait",
    )
    parser.add_argument(
        "--converge", choices=CONVERGE_MODES, default=None,
        help="what the engine does, view or not, about a migration the advisor finds not converging: none"
        f" (default: advise only) or steps (raise downtime-limit once a pass after pass {STEPS_AFTER_PASS}:"
        f" {steps_text()}, then --converge-action). A remedy or abort by an operator stops it for that migration",
    )
    parser.add_argument(
        "--completion-timeout", type=_seconds, default=None, metavar="SECONDS_PER_GIB",
        help="a migration still copying after this many seconds per GiB of guest RAM (counting at least"
        f" {MIN_GIB:g} GiB) gets --converge-action (default: no timeout)",
    )
    parser.add_argument(
        "--converge-action", choices=CONVERGE_ACTIONS, default=None,
        help="what ends a migration --converge steps or --completion-timeout gives up on: abort (default: the"
        " source runs on), postcopy (needs postcopy-ram on both sides before the start; else pause) or pause"
        " (stop the source guest so the copy completes; migtui resumes it on the destination)",
    )


def policy_of(args: argparse.Namespace) -> PolicyInfo:
    """The policy these flags ask the engine for; ``explicit`` names the flags given."""
    explicit = {flag for flag, given in (("auto_resume", args.auto_resume), ("max_pause", args.max_pause is not None),
                                         ("on_max_pause", args.on_max_pause is not None),
                                         ("converge", args.converge is not None),
                                         ("completion_timeout", args.completion_timeout is not None),
                                         ("converge_action", args.converge_action is not None)) if given}
    return PolicyInfo(auto_resume=args.auto_resume,
                      max_pause_s=args.max_pause if args.max_pause is not None else DEFAULT_MAX_PAUSE_S,
                      on_max_pause=args.on_max_pause or DEFAULT_ON_MAX_PAUSE, converge=args.converge or "none",
                      completion_timeout_s=args.completion_timeout, converge_action=args.converge_action or "abort",
                      explicit=sorted(explicit))


# ---------------------------------------------------------------------- MONITOR words

_BARE = re.compile(r"[A-Za-z0-9_.-]+")


def monitor_word_error(words: list[str], commands: list[str]) -> str | None:
    """A MONITOR that is a bare word (no '/', ':' or '=') naming nothing that exists is a
    typo far more often than a socket QEMU has not created yet: say so, with the command it
    may have meant; None when every word is a monitor."""
    for word in words:
        if _BARE.fullmatch(word) and not os.path.exists(word):
            close = difflib.get_close_matches(word, commands, n=1)
            hint = f" (did you mean 'migtui {close[0]}'?)" if close else ""
            return (f"{word!r} is neither a command nor an existing socket{hint}; a socket QEMU has not"
                    f" created yet is written ./{word} or unix:{word}")
    return None


# ---------------------------------------------------------------------- the lab's set-up (lab, demo)


def add_lab_arguments(parser: argparse.ArgumentParser, *, default: str) -> None:
    """The QEMU pair's options, the same for ``migtui lab`` and ``migtui demo``."""
    names = [name for name in SCENARIOS if default != "storage" or name != "none"]
    parser.add_argument("--scenario", choices=names, default=default,
                        help="; ".join(f"{name}: {SCENARIOS[name].summary}" for name in names)
                        + f" (default: {default})")
    parser.add_argument("--memory", type=int, default=128, metavar="MIB", help="guest RAM (default 128)")
    parser.add_argument("--dirty", type=int, default=16, metavar="MIB",
                        help="size of the memory range the guest keeps dirtying (default 16)")
    parser.add_argument("--dirty-rate", type=float, default=None, metavar="MIB/S",
                        help="how fast the guest dirties pages; 0 = as fast as it can (default per scenario)")
    parser.add_argument("--disk-size", type=int, default=64, metavar="MIB", help="data disk size (default 64)")
    parser.add_argument("--bandwidth", type=float, default=None, metavar="MIB/S",
                        help="migration max-bandwidth (default per scenario)")
    parser.add_argument("--downtime-limit", type=int, default=None, metavar="MS",
                        help="migration downtime-limit (default: QEMU's, 300 ms)")
    parser.add_argument("--accel", choices=ACCELS, default=None,
                        help="accelerator (default: $MIGTUI_LAB_ACCEL, else auto: KVM if it works, else TCG)")
    parser.add_argument("--dirty-ring", type=int, default=0, metavar="ENTRIES",
                        help="KVM's per-vCPU dirty ring (a power of two from 1024; 4096 is a good start), which the"
                             " vCPU dirty limit (remedy 5) needs (default: none, KVM's dirty bitmap)")
    add_qemu_argument(parser)


@dataclass(frozen=True)
class LabSettings:
    scenario: Scenario
    bandwidth: float | None  # MiB/s; None: QEMU's own
    rate: float  # MiB/s the guest dirties
    downtime_limit: int | None  # ms
    accel: str  # --accel, else $MIGTUI_LAB_ACCEL, else auto


def lab_settings(args: argparse.Namespace) -> LabSettings:
    """The scenario with the flags that override it, checked before anything starts
    (LabUsageError: one line)."""
    scenario = SCENARIOS[args.scenario]
    if scenario.storage and getattr(args, "no_disk", False):
        raise LabUsageError("--scenario storage needs the data disk: drop --no-disk")
    bandwidth = args.bandwidth if args.bandwidth is not None else scenario.bandwidth_mib_s
    rate = args.dirty_rate if args.dirty_rate is not None else scenario.dirty_rate_mib_s
    if bandwidth is not None and bandwidth <= 0:
        raise LabUsageError(f"--bandwidth must be positive, not {bandwidth:g}")
    if args.downtime_limit is not None and args.downtime_limit < 1:
        raise LabUsageError(f"--downtime-limit must be at least 1 ms, not {args.downtime_limit}")
    try:
        accel = args.accel or default_accel()
    except LabError as err:
        raise LabUsageError(str(err)) from None
    return LabSettings(scenario, bandwidth, rate, args.downtime_limit, accel)
