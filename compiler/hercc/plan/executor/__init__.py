"""The system executor: how a plan's steps change a real node.

  system_executor  SystemExecutor, the apply.Executor: each resource kind as
                   System calls and driver calls, each delete with its Restore
  system           the System boundary (every side effect) and LinuxSystem
  wireguard_go     the wireguard-go processes: start, PID file, stop
  errors           ExecutorError and its subclasses

Callers need only the executor and the two questions about wireguard-go
below; tests and fakes import the parts.
"""

from hercc.plan.executor.system_executor import SystemExecutor
from hercc.plan.executor.wireguard_go import wireguard_go_pid_file, wireguard_unavailable_reason

__all__ = ["SystemExecutor", "wireguard_go_pid_file", "wireguard_unavailable_reason"]
