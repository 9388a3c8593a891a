"""Where migtui's log goes: a file (--log-file), or nowhere.

Never the terminal: a view draws there, and the engine has none.
"""

from __future__ import annotations

import logging


def setup_logging(path: str | None) -> None:
    """A file handler, or a null one: the lastResort stderr handler must never fire."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if path is None:
        root.addHandler(logging.NullHandler())
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
