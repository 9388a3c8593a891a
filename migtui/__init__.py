"""migtui: a terminal dashboard for QEMU live migration."""

__version__ = "0.1.0"
