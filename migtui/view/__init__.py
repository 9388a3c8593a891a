"""The views' side of the engine link (no textual): remote sessions and the client."""
