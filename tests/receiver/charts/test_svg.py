"""Charts as SVG: parsed, the points, limits and moments land where the data and the times put them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from receiver.charts import Chart, Line, Mark, Threshold, draw_svg, sparkline

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = datetime(2026, 11, 25, 16, 30, tzinfo=timezone.utc)
MINUTES = tuple(T0 + timedelta(minutes=i) for i in range(20))
# P99 at 100 ms, 2 s for minutes 8-11, nothing measured in minute 15.
P99 = tuple(None if i == 15 else (2000.0 if 8 <= i < 12 else 100.0) for i in range(20))


def chart(**changes) -> Chart:
    base = dict(title="Latency on backend api", unit="ms", minutes=MINUTES,
                lines=(Line("P99", "p99", P99), Line("P50", "p50", tuple(50.0 for _ in MINUTES))),
                thresholds=(Threshold("P99 limit", 1000.0),),
                marks=(Mark("onset", "signals changed", T0 + timedelta(minutes=8)),
                       Mark("alert", "alert fired", T0 + timedelta(minutes=9, seconds=30)),
                       Mark("resolved", "resolved", T0 + timedelta(minutes=12))))
    return Chart(**{**base, **changes})


class Plot:
    """The plot area as the SVG states it, and where a time and a value should land in it."""

    def __init__(self, root: ET.Element) -> None:
        box = root.find(".//s:rect[@data-top]", NS)
        self.x, self.y = float(box.get("x")), float(box.get("y"))
        self.width, self.height = float(box.get("width")), float(box.get("height"))
        self.start = datetime.fromisoformat(box.get("data-start"))
        self.end = datetime.fromisoformat(box.get("data-end"))
        self.top = float(box.get("data-top"))

    def at(self, when: datetime) -> float:
        return self.x + (when - self.start) / (self.end - self.start) * self.width

    def level(self, value: float) -> float:
        return self.y + self.height * (1 - value / self.top)


def points(root: ET.Element, series: str) -> list[list[tuple[float, float]]]:
    group = root.find(f".//s:g[@data-series='{series}']", NS)
    return [[tuple(map(float, pair.split(","))) for pair in poly.get("points").split()]
            for poly in group.findall("s:polyline", NS)]


def test_each_minute_is_drawn_at_its_middle_and_its_value() -> None:
    root = ET.fromstring(draw_svg(chart()))
    plot = Plot(root)
    runs = points(root, "P99")
    # The unmeasured minute splits the line in two: minutes 0-14 and 16-19.
    assert [len(run) for run in runs] == [15, 4]
    drawn = dict(zip([i for i in range(20) if i != 15], runs[0] + runs[1]))
    for i, (x, y) in drawn.items():
        assert x == pytest.approx(plot.at(MINUTES[i] + timedelta(seconds=30)), abs=0.1)
        assert y == pytest.approx(plot.level(P99[i]), abs=0.1)
    # The regression is the top of the line, and the top of the plot holds it with a little room.
    assert min(y for _, y in drawn.values()) == drawn[8][1]
    assert 2000 < plot.top <= 2500


def test_limits_and_moments_are_where_the_thresholds_and_times_say() -> None:
    root = ET.fromstring(draw_svg(chart()))
    plot = Plot(root)
    limit = root.find(".//s:g[@data-threshold='P99 limit']/s:line", NS)
    assert float(limit.get("y1")) == float(limit.get("y2")) == pytest.approx(plot.level(1000), abs=0.1)
    moments = {g.get("data-mark"): float(g.find("s:line", NS).get("x1")) for g in root.findall(".//s:g[@data-mark]", NS)}
    assert moments == pytest.approx({"onset": plot.at(T0 + timedelta(minutes=8)),
                                     "alert": plot.at(T0 + timedelta(minutes=9, seconds=30)),
                                     "resolved": plot.at(T0 + timedelta(minutes=12))}, abs=0.1)
    # The regression's points lie between the onset and the resolution.
    regression = [x for x, y in points(root, "P99")[0] if y < plot.level(1000)]
    assert len(regression) == 4 and all(moments["onset"] < x < moments["resolved"] for x in regression)


def test_a_moment_after_the_last_minute_widens_the_frame() -> None:
    late = T0 + timedelta(minutes=25)
    root = ET.fromstring(draw_svg(chart(marks=(Mark("resolved", "resolved", late),))))
    plot = Plot(root)
    assert plot.end == late
    assert float(root.find(".//s:g[@data-mark='resolved']/s:line", NS).get("x1")) == pytest.approx(plot.x + plot.width)


def test_the_svg_says_what_it_shows_and_stays_small() -> None:
    text = draw_svg(chart())
    root = ET.fromstring(text)
    assert root.find("s:title", NS).text == "Latency on backend api"
    desc = root.find("s:desc", NS).text
    assert "P99: 100 ms at 16:30, peak 2 s at 16:38" in desc
    assert "alert fired at 16:39:30 UTC" in desc
    assert root.get("role") == "img"
    assert "prefers-color-scheme:dark" in text
    assert "<script" not in text and "href" not in text
    assert len(text.encode()) < 40_000


def test_names_from_logs_are_text_in_the_svg() -> None:
    text = draw_svg(chart(title='Latency on backend <script>alert(1)</script>"&'))
    root = ET.fromstring(text)
    assert root.find("s:title", NS).text == 'Latency on backend <script>alert(1)</script>"&'
    assert root.find(".//s:script", NS) is None


def test_sparkline_rises_with_the_values_and_leaves_gaps() -> None:
    assert sparkline([0, 1, 2, 4, None, 8]) == "▁▂▃▅ █"
    assert sparkline([5, 5]) == "██"
    assert sparkline([]) == ""
    assert sparkline([0, 0]) == "▁▁"


def test_a_label_near_the_right_edge_goes_left_of_its_moment_and_close_labels_take_rows() -> None:
    marks = (Mark("alert", "alert fired", T0 + timedelta(minutes=19, seconds=50)),
             Mark("diagnosed", "diagnosed", T0 + timedelta(minutes=19, seconds=55)),
             Mark("onset", "signals changed", T0 + timedelta(minutes=2)))
    root = ET.fromstring(draw_svg(chart(marks=marks)))
    labels = {g.get("data-mark"): g.find("s:text", NS) for g in root.findall(".//s:g[@data-mark]", NS)}
    assert labels["alert"].get("text-anchor") == "end" and labels["onset"].get("text-anchor") is None
    rows = {kind: float(text.get("y")) for kind, text in labels.items()}
    assert rows["alert"] != rows["diagnosed"] and rows["onset"] == min(rows.values())
