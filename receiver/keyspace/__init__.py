"""The Redis the service keeps its state in: the client for how it is deployed (one server, a master
named by Sentinels, a Cluster), and the key names brought up to date at start."""

from .client import connect, connect_configured
from .renames import current_name, tag_key_names, tag_key_names_when_reachable

__all__ = ["connect", "connect_configured", "current_name", "tag_key_names", "tag_key_names_when_reachable"]
