"""QMP transport: one ``Monitor`` per QEMU monitor socket (asyncio, qemu.qmp)."""

from .monitor import Monitor
from .readonly import READ_ONLY_COMMANDS, is_read_only
from .status import ConnectionStatus, ConnState

__all__ = ["READ_ONLY_COMMANDS", "ConnState", "ConnectionStatus", "Monitor", "is_read_only"]
