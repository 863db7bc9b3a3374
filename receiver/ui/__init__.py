"""Incident pages in the browser: server-rendered HTML under `/ui/`, with no script and nothing fetched elsewhere.

What the rest of the service may use is listed in `__all__`.
"""

from .pages import setup_routes

__all__ = ["setup_routes"]
