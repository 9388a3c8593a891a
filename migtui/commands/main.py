"""Command line entry point: dispatches to one module per command.

``migtui [OPTIONS] MONITOR...`` opens the dashboard; ``migtui status`` prints a
one-shot snapshot; ``migtui lab`` starts a real QEMU pair. Each command lives in its
own module exposing ``add_arguments(parser)`` and ``run(args) -> int`` so this file
only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import NoReturn

from .. import __version__
from .options import monitor_word_error

# command name -> (module, one-line help). "watch" is the default command.
COMMANDS = {
    "watch": ("migtui.commands.watch", "open the live dashboard on MONITOR... (the default)"),
    "status": ("migtui.commands.status", "print a one-shot snapshot of each monitor"),
    "lab": ("migtui.commands.lab", "start a real QEMU source/destination pair to migrate"),
    "demo": ("migtui.commands.demo", "the lab and the dashboard in one command (for demos and training)"),
    "attach": ("migtui.commands.attach", "a view of everything the engine watches"),
    "engine": ("migtui.commands.engine", "run the engine (the views start it by themselves), or stop it"),
}


class _Parser(argparse.ArgumentParser):
    # Usage errors: one line plus the hint, exit 2 (argparse's own convention).
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"migtui: {message} (see '{self.prog} --help')\n")


def _commands_text() -> str:
    lines = ["commands (migtui COMMAND --help for each):"]
    lines += [f"  {name:<8} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def build_parser(command: str, *, named: bool = True) -> argparse.ArgumentParser:
    """``named``: the command was given by name (``migtui watch``), not by default."""
    module_name, help_text = COMMANDS[command]
    default = command == "watch" and not named
    prog = "migtui" if default else f"migtui {command}"
    # The default command's help is migtui's: its options, then the other commands (git, virsh).
    parser = _Parser(prog=prog, description=help_text, epilog=_commands_text() if default else None,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"migtui {__version__}")
    importlib.import_module(module_name).add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        print(f"migtui {__version__}")
        return 0
    if argv[:1] == ["help"]:  # as git and virsh read it
        argv = ["--help", *argv[1:]] if len(argv) == 1 or argv[1] not in COMMANDS else [argv[1], "--help"]
    if not argv:
        build_parser("watch", named=False).print_help(sys.stderr)
        return 2
    command, named = "watch", False
    if argv[0] in COMMANDS:
        command, named = argv.pop(0), True
    args = build_parser(command, named=named).parse_args(argv)
    if command in ("watch", "status") and not (args.connect or os.environ.get("LIBVIRT_DEFAULT_URI")):
        wrong = monitor_word_error(args.monitors, list(COMMANDS))
        if wrong is not None:
            prog = "migtui" if not named else f"migtui {command}"
            print(f"migtui: {wrong} (see '{prog} --help')", file=sys.stderr)
            return 2
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # what reads our output left (`migtui status --json | head`): nothing to say
        # Python flushes stdout again at exit: onto /dev/null, not into another broken pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE  # as a program the signal ended (Python ignores SIGPIPE)


if __name__ == "__main__":
    sys.exit(main())
