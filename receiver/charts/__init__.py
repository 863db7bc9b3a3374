"""Time-series charts as standalone SVG, and sparklines for the terminal.

What the rest of the service may use is listed in `__all__`.
"""

from .model import Chart, Line, Mark, Threshold
from .blocks import sparkline
from .svg import Frame, draw_svg

__all__ = ["Chart", "Frame", "Line", "Mark", "Threshold", "draw_svg", "sparkline"]
