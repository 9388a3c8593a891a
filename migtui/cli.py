"""Command line entry point.

``migtui [OPTIONS] MONITOR...`` opens the dashboard; ``migtui status`` prints a
one-shot snapshot; ``migtui lab`` starts a real QEMU pair. Each command lives in its
own module exposing ``add_arguments(parser)`` and ``run(args) -> int`` so this file
only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from . import __version__

# command name -> (module, one-line help). "watch" is the default command.
COMMANDS = {
    "watch": ("migtui.tui.command", "open the live dashboard on MONITOR... (the default)"),
    "status": ("migtui.workflow.status", "print a one-shot snapshot of each monitor"),
    "lab": ("migtui.lab.command", "start a real QEMU source/destination pair to migrate"),
    "demo": ("migtui.demo", "the lab and the dashboard in one command (for demos and training)"),
    "attach": ("migtui.tui.attach", "a view of everything the engine watches"),
    "engine": ("migtui.engine.command", "run the engine (the views start it by themselves), or stop it"),
}


class _Parser(argparse.ArgumentParser):
    # Usage errors: one line plus the hint, exit 2 (argparse's own convention).
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"migtui: {message} (see '{self.prog} --help')\n")


def build_parser(command: str) -> argparse.ArgumentParser:
    module_name, help_text = COMMANDS[command]
    prog = "migtui" if command == "watch" else f"migtui {command}"
    parser = _Parser(prog=prog, description=help_text)
    parser.add_argument("--version", action="version", version=f"migtui {__version__}")
    importlib.import_module(module_name).add_arguments(parser)
    return parser


def _usage() -> str:
    lines = ["usage: migtui [OPTIONS] MONITOR...   (or: migtui COMMAND --help)", "", "commands:"]
    lines += [f"  {name:<8} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "MONITOR: [NAME=](PATH | unix:PATH | HOST:PORT | tcp:HOST:PORT | [IPv6]:PORT)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        print(f"migtui {__version__}")
        return 0
    if not argv or argv[:1] in (["-h"], ["--help"]):
        print(_usage())
        return 0 if argv else 2
    command = "watch"
    if argv[0] in COMMANDS:
        command = argv.pop(0)
    args = build_parser(command).parse_args(argv)
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
