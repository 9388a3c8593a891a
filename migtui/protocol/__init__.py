"""What the engine and its views say to each other, and where they meet.

``framing``: one JSON object per line, the version; ``runtime``: the per-user directory
with the socket; ``wire``: the messages. Both ends import this package; neither
imports the other (tests/test_imports.py).
"""
