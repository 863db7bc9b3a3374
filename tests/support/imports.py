"""What a module imports, read from its source: for tests of the dependency direction."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    """The dotted name of a source file of the checkout: receiver/http/logs.py -> receiver.http.logs."""
    parts = list(path.resolve().relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved to absolute names.

    `from . import x` names the module `x` of the package where there is one, else the package.
    """
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.add(node.module or "")
                continue
            base = package[: len(package) - (node.level - 1)]
            module = ".".join([*base, node.module] if node.module else base)
            if node.module:
                found.add(module)
            for alias in node.names:
                candidate = ROOT.joinpath(*module.split("."), alias.name)
                is_module = candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file()
                found.add(f"{module}.{alias.name}" if is_module else module)
    return found


def sources(*folders: str) -> list[Path]:
    """The Python files under top-level folders of the checkout."""
    return [path for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))]


def names_imported_from(module: str, paths: list[Path]) -> set[str]:
    """The names the files take with `from <module> import ...`, wherever in a file."""
    return {alias.name for path in paths for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == module
            for alias in node.names}


def submodule_imports(package: str, paths: list[Path]) -> dict[str, list[str]]:
    """The files that reach past a package's `__init__`, and the modules of it they import."""
    found = {path.relative_to(ROOT).as_posix(): sorted(m for m in imported_modules(path)
                                                       if m.startswith(package + "."))
             for path in paths}
    return {path: modules for path, modules in found.items() if modules}
