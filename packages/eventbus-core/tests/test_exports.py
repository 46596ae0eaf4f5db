"""The public surface of eventbus.core: __all__ is sorted and is exactly what is exported."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import re
import types
from pathlib import Path

import eventbus.core
import eventbus.core.testing


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions.
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted_without_duplicates() -> None:
    names = list(eventbus.core.__all__)
    assert names == sorted(names, key=_isort_key)
    assert len(names) == len(set(names))


def test_all_equals_the_public_names_of_the_package() -> None:
    public = {
        name
        for name, value in vars(eventbus.core).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # submodules such as eventbus.core.testing
        and name != "annotations"  # from __future__ import annotations
    }
    assert public == set(eventbus.core.__all__)


def test_every_exported_name_is_importable_from_the_package() -> None:
    namespace: dict[str, object] = {}
    exec("from eventbus.core import *", namespace)
    for name in eventbus.core.__all__:
        assert namespace[name] is getattr(eventbus.core, name)


def test_every_private_module_declares_all_and_its_names_exist() -> None:
    for info in pkgutil.iter_modules(eventbus.core.__path__):
        module = importlib.import_module(f"eventbus.core.{info.name}")
        assert isinstance(module.__all__, list), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"eventbus.core.{info.name} lacks {name}"


def test_the_conformance_kit_exports_exactly_its_sorted_public_names() -> None:
    kit = eventbus.core.testing
    names = list(kit.__all__)
    assert names == sorted(names, key=_isort_key)
    public = {
        name
        for name, value in vars(kit).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(names)
    for info in pkgutil.iter_modules(kit.__path__):
        assert info.name.startswith("_"), f"eventbus.core.testing.{info.name} is not private"
        module = importlib.import_module(f"eventbus.core.testing.{info.name}")
        assert isinstance(module.__all__, list), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"eventbus.core.testing.{info.name} lacks {name}"


def test_eventbus_is_a_namespace_package() -> None:
    spec = importlib.util.find_spec("eventbus")
    assert spec is not None
    assert spec.origin in (None, "namespace")  # no eventbus/__init__.py
    core_dir = Path(eventbus.core.__file__).parent
    assert not (core_dir.parent / "__init__.py").exists()
    assert (core_dir / "py.typed").exists()


def test_the_distribution_ships_no_namespace_init_and_no_runtime_dependencies() -> None:
    distribution = importlib.metadata.distribution("eventbus-core")
    files = [str(f) for f in distribution.files or []]
    assert "eventbus/__init__.py" not in files
    # The only requirements are extras: the conformance kit's test tools, and msgspec for
    # the faster parser.
    requires = distribution.requires or []
    assert requires, "eventbus-core[testing] declares pytest and pytest-asyncio"
    for requirement in requires:
        assert re.search(r"""; *extra *== *["'](testing|fast)["']$""", requirement), requirement
    assert any(r.startswith("msgspec") for r in requires)
    assert sorted(distribution.metadata.get_all("Provides-Extra") or []) == ["fast", "testing"]
