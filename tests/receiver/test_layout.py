"""The receiver's rooms and which way their imports go, read from the source."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

import receiver
from tests.support.imports import imported_modules, module_name, names_imported_from, sources

RECEIVER_DIR = Path(receiver.__file__).parent

# Highest first. A unit (a room, or a module directly in receiver/) imports only units of its
# own layer or of a lower one, and the units' imports form no cycle.
LAYERS = (
    ("entry points", {"cli", "demo"}),
    ("composition root", {"app", "announcements", "workers"}),
    ("HTTP edge", {"http", "ui"}),
    ("ground", {"appkeys", "settings", "embedded_redis", "keyspace", "logging_setup", "resources"}),
    ("domain rooms", {"incidents", "intake", "memory", "notify", "rules"}),
    ("base", {"resources", "retry", "ordering", "streams", "charts"}),
)
RANK = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}
# Rooms whose `__init__` says, with `__all__`, what the rest of the service may use of them.
PUBLIC_ROOMS = ("charts", "http", "incidents", "intake", "keyspace", "memory", "notify", "rules", "ui",
                "workers")

# Domain rooms know nothing of the service around them, nor of each other: only the base
# (where the package's files are and how one is replaced; how to wait and try again; how a
# chart is drawn).
DOMAIN = LAYERS[-2][1]


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "receiver" else None


def unit_imports() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in RECEIVER_DIR.rglob("*.py"):
        source = unit_of(module_name(path))
        if source is None:
            continue
        for target in filter(None, map(unit_of, imported_modules(path))):
            if target != source:
                edges[source].add(target)
    return edges


def test_every_unit_has_a_layer_and_the_top_stays_small() -> None:
    units = {p.stem for p in RECEIVER_DIR.glob("*.py") if p.stem != "__init__"}
    rooms = {p.parent.name for p in RECEIVER_DIR.glob("*/__init__.py")}
    assert units | rooms == set(RANK)
    assert len(list(RECEIVER_DIR.glob("*.py"))) <= 12


def test_imports_never_go_up_a_layer() -> None:
    upward = [(source, target) for source, targets in unit_imports().items() for target in targets
              if RANK[target] < RANK[source]]
    assert upward == []


def test_domain_rooms_import_nothing_else_of_the_receiver() -> None:
    edges = unit_imports()
    base = LAYERS[-1][1]
    assert {room: edges[room] - base for room in DOMAIN if edges[room] - base} == {}


def test_no_import_cycle_between_units() -> None:
    edges = unit_imports()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges[start] - seen:
            if nxt == goal or reaches(nxt, goal, seen | {nxt}):
                return True
        return False

    assert [unit for unit in list(edges) if reaches(unit, unit, set())] == []


def test_relative_imports_are_resolved() -> None:
    """The checks above see `from ..settings import X` as well as `from receiver.settings import X`."""
    assert "receiver.settings" in imported_modules(RECEIVER_DIR / "app.py")
    assert "receiver.incidents.lifecycle" in imported_modules(RECEIVER_DIR / "incidents" / "pipeline.py")


@pytest.mark.parametrize("room", PUBLIC_ROOMS)
def test_a_room_is_used_through_its_public_names_only(room: str) -> None:
    package = f"receiver.{room}"
    exported = set(__import__(package, fromlist=["__all__"]).__all__)
    outside = [path for path in sources("receiver") if unit_of(module_name(path)) != room]
    assert names_imported_from(package, outside) - exported == set()
    deep = {module_name(path): sorted(m for m in imported_modules(path) if m.startswith(package + "."))
            for path in outside}
    assert {name: modules for name, modules in deep.items() if modules} == {}


@pytest.mark.parametrize("room", PUBLIC_ROOMS)
def test_a_room_exports_only_what_it_defines(room: str) -> None:
    package = __import__(f"receiver.{room}", fromlist=["__all__"])
    assert len(set(package.__all__)) == len(package.__all__)
    for name in package.__all__:
        value = getattr(package, name)
        home = getattr(value, "__module__", None) or ""
        assert home == f"receiver.{room}" or home.startswith(f"receiver.{room}.") or not callable(value), name
