"""libvirt domains as monitors: libvirt's own connections (local or ``qemu+ssh://``), its
job statistics, events and QEMU event passthrough, translated into the QMP inputs the
model folds (docs/design.md: "a source that is not QMP is translated by the engine").

libvirt-python is optional (``migtui[libvirt]``): only ``binding.load()`` imports it.
"""
