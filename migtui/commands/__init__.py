"""The commands: the top layer, one thin module per ``migtui`` command (like tmux's cmd-*.c).

Each turns argv into calls of the layers below (``add_arguments(parser)`` and
``run(args) -> int``); nothing below imports this package (tests/test_layering.py).
"""
