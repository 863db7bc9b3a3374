"""`serve --workers N`: processes that share the service's ports, and the parent that keeps them running."""

from .member import exposition_registry, shares_metrics, stop_with_parent
from .plan import RestartBackoff, cores, cpu_quota, worker_count
from .supervisor import WorkerGroup, run, worker_command

__all__ = ["RestartBackoff", "WorkerGroup", "cores", "cpu_quota", "exposition_registry", "run", "shares_metrics",
           "stop_with_parent", "worker_command", "worker_count"]
