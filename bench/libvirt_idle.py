"""Idle libvirt domains for the benchmarks: two real libvirt hosts (tests/libvirt_lab.py, its own
directories and ports) and N tiny guests spread over them, each 32 MiB with no disk, so
SeaBIOS finds nothing to boot and halts (a guest that costs next to nothing: what is
measured is migtui watching it, not the guest).
"""

from __future__ import annotations

import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from libvirt_lab import LibvirtLab  # noqa: E402

PREFIX = "lvidle"
MEMORY_MIB = 32


def domain_xml(lab: LibvirtLab, name: str) -> str:
    domain = ET.Element("domain", type=lab.accel)
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "memory", unit="MiB").text = str(MEMORY_MIB)
    ET.SubElement(domain, "vcpu").text = "1"
    os_el = ET.SubElement(domain, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(ET.SubElement(domain, "features"), "acpi")
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    devices = ET.SubElement(domain, "devices")
    ET.SubElement(devices, "emulator").text = lab.emulator
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def start_idle(lab: LibvirtLab, n: int) -> list[str]:
    """N idle domains, alternately on host a and host b; their ``HOST/DOMAIN`` names."""
    names = []
    for i in range(n):
        host, label = (lab.a, "a") if i % 2 == 0 else (lab.b, "b")
        name = f"{PREFIX}{i:02d}"
        path = lab.root / f"{name}.xml"
        path.write_text(domain_xml(lab, name))
        host.virsh("create", str(path), timeout=60)
        names.append(f"{label}/{name}")
    return names


def open_lab() -> LibvirtLab:
    """Two libvirt hosts, started (close() ends them and every domain)."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise SystemExit("bench: qemu-system-x86_64 not found")
    lab = LibvirtLab(qemu)
    try:
        lab.start()
    except BaseException:
        lab.close()
        raise
    return lab


def connections(lab: LibvirtLab) -> list[str]:
    """migtui's arguments for both hosts, labelled a and b."""
    return ["-c", f"a={lab.a.uri}", "-c", f"b={lab.b.uri}"]
