"""The engine: QMP connections, workflows and policies, serving views over a UNIX socket."""
