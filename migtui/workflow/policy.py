"""What the engine does about a source's pre-switchover pause, and whether it may.

A :class:`Policy` is set per monitor by the view that asked the engine to watch it
(``--auto-resume``, ``--max-pause``, ``--on-max-pause``, and the convergence policy
``--converge``, ``--completion-timeout``, ``--converge-action`` that
``workflow/converge_policy.py`` runs). Whether it *applies* to a
pause depends on who owns that pause (:func:`applies`): migtui's own (it armed the
source) always; one it does not own only when the operator named the monitor with the
flag explicitly; and never a pause of a QEMU that libvirt manages -- libvirt finishes
its own mirrors and sends its own ``migrate-continue``, and racing it breaks the
migration. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..libvirt.domain import LIBVIRT

ON_MAX_PAUSE = ("abort", "resume", "wait")
DEFAULT_MAX_PAUSE_S = 60.0
DEFAULT_ON_MAX_PAUSE = "abort"
# The convergence policy (workflow/converge_policy.py): none advises only.
CONVERGE_MODES = ("none", "steps")
CONVERGE_ACTIONS = ("abort", "postcopy", "pause")

# Each flag an operator may give (``Policy.explicit``) -> the field it sets.
FLAGS = {"auto_resume": "auto_resume", "max_pause": "max_pause_s", "on_max_pause": "on_max_pause",
         "converge": "converge", "completion_timeout": "completion_timeout_s", "converge_action": "converge_action"}

# Who a pause belongs to.
OWNER_MIGTUI = "migtui"  # this engine armed the source
OWNER_LIBVIRT = LIBVIRT  # a libvirt-managed QEMU: libvirt drives its switchover
OWNER_OTHER = "other"  # armed by some other client (a script, the lab, another tool)


@dataclass(frozen=True)
class Policy:
    auto_resume: bool = False
    max_pause_s: float = DEFAULT_MAX_PAUSE_S
    on_max_pause: str = DEFAULT_ON_MAX_PAUSE
    # The flags the operator gave for this monitor ("auto_resume", "max_pause", "on_max_pause",
    # "converge", "completion_timeout", "converge_action").
    explicit: frozenset[str] = field(default_factory=frozenset)
    converge: str = "none"  # --converge
    completion_timeout_s: float | None = None  # --completion-timeout: seconds per GiB of guest RAM
    converge_action: str = "abort"  # --converge-action

    def __post_init__(self) -> None:
        if self.converge not in CONVERGE_MODES:
            raise ValueError(f"--converge must be one of {', '.join(CONVERGE_MODES)}, not {self.converge!r}")
        if self.converge_action not in CONVERGE_ACTIONS:
            raise ValueError(f"--converge-action must be one of {', '.join(CONVERGE_ACTIONS)},"
                             f" not {self.converge_action!r}")
        if self.completion_timeout_s is not None and not self.completion_timeout_s > 0:
            raise ValueError(f"--completion-timeout must be positive, not {self.completion_timeout_s:g}")
        if self.on_max_pause not in ON_MAX_PAUSE:
            raise ValueError(f"--on-max-pause must be one of {', '.join(ON_MAX_PAUSE)}, not {self.on_max_pause!r}")
        if not self.max_pause_s > 0:
            raise ValueError(f"--max-pause must be positive, not {self.max_pause_s:g}")

    @property
    def deadline_explicit(self) -> bool:
        return bool({"max_pause", "on_max_pause"} & self.explicit)

    def merged(self, newer: Policy) -> Policy:
        """This policy with what ``newer`` states explicitly (a later `migtui ... MONITOR`)."""
        changes = {name: getattr(newer, name) for flag, name in FLAGS.items() if flag in newer.explicit}
        return replace(self, explicit=self.explicit | newer.explicit, **changes) if changes else self

    def to_json(self) -> dict[str, Any]:
        return {"auto_resume": self.auto_resume, "max_pause_s": self.max_pause_s,
                "on_max_pause": self.on_max_pause, "converge": self.converge,
                "completion_timeout_s": self.completion_timeout_s, "converge_action": self.converge_action,
                "explicit": sorted(self.explicit)}

    @classmethod
    def from_json(cls, data: Any) -> Policy:
        if not isinstance(data, dict):
            return cls()
        explicit = frozenset(str(x) for x in data.get("explicit") or ())
        timeout = data.get("completion_timeout_s")
        return cls(auto_resume=bool(data.get("auto_resume", False)),
                   max_pause_s=float(data.get("max_pause_s", DEFAULT_MAX_PAUSE_S)),
                   on_max_pause=str(data.get("on_max_pause", DEFAULT_ON_MAX_PAUSE)),
                   converge=str(data.get("converge", "none")),
                   completion_timeout_s=float(timeout) if isinstance(timeout, (int, float)) else None,
                   converge_action=str(data.get("converge_action", "abort")),
                   explicit=explicit)


def applies(policy: Policy, owner: str, what: str) -> tuple[bool, str]:
    """May the engine act on this pause by itself? ``what``: "auto_resume" or "deadline".

    Returns (allowed, why) -- the reason is shown in every view.
    """
    if owner == OWNER_LIBVIRT:
        return False, "libvirt drives this migration: migtui only watches (acting would race libvirt)"
    if what == "auto_resume":
        if not policy.auto_resume:
            return False, "auto-resume is off"
        if owner == OWNER_MIGTUI or "auto_resume" in policy.explicit:
            return True, "auto-resume"
        return False, "not migtui's pause: auto-resume needs the monitor named with --auto-resume"
    if policy.on_max_pause == "wait":
        return False, "--on-max-pause wait"  # the views say "no deadline: <why>"
    if owner == OWNER_MIGTUI or policy.deadline_explicit:
        return True, f"deadline {policy.max_pause_s:g} s, then {policy.on_max_pause}"
    return False, "not migtui's pause (--max-pause/--on-max-pause set one only for a monitor they name)"
