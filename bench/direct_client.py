"""The baseline for bench/pause_bench.py: a minimal hand-written qemu.qmp client.

    .venv/bin/python bench/direct_client.py SOCKET JOB...

Connects to a source's QMP socket and, on the MIGRATION pre-switchover event,
gracefully cancels every named mirror job at once, sends migrate-continue the moment
the last BLOCK_JOB_COMPLETED arrives, and exits when the migration ends. No checks,
no state, no UI: the fastest reasonable reaction to the pause with qemu.qmp. It
knows its mirror jobs in advance (it made them), so unlike migtui it sends no
query between the event and the cancels. It prints ``listening`` once it waits
for the event, and the final status at the end.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from qemu.qmp import EventListener, QMPClient

END = frozenset({"completed", "failed", "cancelled", "postcopy-active"})


async def switchover_on_event(client: QMPClient, jobs: list[str], ready: asyncio.Event | None = None) -> str:
    """Wait for the pause, finish ``jobs``, continue; return the final migration status."""
    listener = EventListener(("MIGRATION", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"))
    pending: set[str] = set()
    with client.listen(listener):
        if ready is not None:
            ready.set()
        async for event in listener:
            name = event["event"]
            data: Any = event.get("data", {})  # JSON
            if name == "MIGRATION":
                status = data.get("status")
                if status == "pre-switchover":
                    pending = set(jobs)
                    if not pending:
                        await client.execute("migrate-continue", {"state": "pre-switchover"})
                        continue
                    await asyncio.gather(*(client.execute("block-job-cancel", {"device": job, "force": False})
                                           for job in jobs))
                elif status in END:
                    return str(status)
            elif data.get("device") in pending:
                if name == "BLOCK_JOB_CANCELLED" or data.get("error"):
                    raise RuntimeError(f"mirror {data.get('device')} failed: {data.get('error', name)}")
                pending.discard(data["device"])
                if not pending:
                    await client.execute("migrate-continue", {"state": "pre-switchover"})
    raise RuntimeError("event stream ended")


async def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    client = QMPClient("direct")
    await client.connect(argv[0])
    try:
        ready = asyncio.Event()
        task = asyncio.create_task(switchover_on_event(client, argv[1:], ready))
        await ready.wait()
        print("listening", flush=True)  # bench/pause_bench.py starts the migration on this line
        status = await task
    finally:
        await client.disconnect()
    print(status)
    return 0 if status in ("completed", "postcopy-active") else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
