"""The --read-only allow-list: QMP commands that only read QEMU's state.

An allow-list, not a deny-list: a command QEMU adds later is refused until someone
checks it. Never add ``human-monitor-command`` (it runs any HMP command) or
``query-rx-filter`` (re-arms an event as a side effect).
"""

from __future__ import annotations

READ_ONLY_COMMANDS: frozenset[str] = frozenset(
    {
        # Capabilities negotiation: qemu.qmp sends it on every connect; changes no VM state.
        "qmp_capabilities",
        # Migration and dirty rate.
        "query-migrate",
        "query-migrate-capabilities",
        "query-migrate-parameters",
        "query-dirty-rate",
        "query-vcpu-dirty-limit",
        "query-colo-status",
        # Block devices and jobs.
        "query-block",
        "query-blockstats",
        "query-block-jobs",
        "query-block-exports",
        "query-named-block-nodes",
        "query-jobs",
        # The VM itself.
        "query-status",
        "query-name",
        "qom-list",  # lists an object's properties (who manages this QEMU: ownership.py)
        "query-uuid",
        "query-version",
        "query-kvm",
        "query-target",
        "query-current-machine",
        "query-cpus-fast",
        "query-hotpluggable-cpus",
        "query-memory-size-summary",
        "query-memory-devices",
        "query-memdev",
        "query-balloon",
        "query-iothreads",
        "query-chardev",
        "query-pci",
        "query-replay",
        "query-stats",
        "query-stats-schemas",
        # What this QEMU can do.
        "query-commands",
        "query-qmp-schema",
        "query-machines",
        "query-cpu-definitions",
        "query-command-line-options",
    }
)


def is_read_only(command: str) -> bool:
    """True if --read-only lets ``command`` through."""
    return command in READ_ONLY_COMMANDS
