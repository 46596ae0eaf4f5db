"""open_store: lookup through the installed ``eventbus.stores`` entry points."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from eventbus.core import MemoryStore, UnknownStoreError, _discovery, open_store
from eventbus.core._discovery import ENTRY_POINT_GROUP, _installed_stores

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    _installed_stores.cache_clear()
    yield
    _installed_stores.cache_clear()


def _fake_entry_points(*points: tuple[str, str]) -> importlib.metadata.EntryPoints:
    return importlib.metadata.EntryPoints(
        importlib.metadata.EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in points
    )


def test_memory_scheme_is_registered_by_the_installed_distribution() -> None:
    # Real metadata: this is the entry point eventbus-core's pyproject declares.
    assert "memory" in _installed_stores()
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    assert store is not open_store("memory://")


def test_entry_points_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(*, group: str) -> importlib.metadata.EntryPoints:
        calls.append(group)
        return _fake_entry_points(("memory", "eventbus.core._memory:open_memory_store"))

    monkeypatch.setattr(_discovery, "entry_points", counting)
    for _ in range(3):
        open_store("memory://")
    with pytest.raises(UnknownStoreError):
        open_store("nope://")
    assert calls == [ENTRY_POINT_GROUP]


def test_nothing_is_loaded_at_import_time() -> None:
    code = (
        "import sys, importlib.metadata as m\n"
        "calls = []\n"
        "original = m.entry_points\n"
        "m.entry_points = lambda **kw: calls.append(kw) or original(**kw)\n"
        "import eventbus.core, eventbus.core.testing\n"
        "assert calls == [], calls\n"
        "assert 'eventbus.core._memory' in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr


def test_unknown_scheme_lists_installed_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _discovery,
        "entry_points",
        lambda *, group: _fake_entry_points(
            ("memory", "eventbus.core._memory:open_memory_store"),
            ("sqlite", "eventbus.sqlite:open_sqlite_store"),
        ),
    )
    with pytest.raises(UnknownStoreError) as caught:
        open_store("sqlit:///events.db")
    message = str(caught.value)
    assert "'sqlit'" in message
    assert "misspelled or its backend is not installed" in message
    assert "memory://, sqlite://" in message
    assert repr(ENTRY_POINT_GROUP) in message
    assert isinstance(caught.value, LookupError)


def test_unknown_scheme_with_nothing_installed_says_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_discovery, "entry_points", lambda *, group: _fake_entry_points())
    with pytest.raises(UnknownStoreError, match=r"Installed schemes .*: none\."):
        open_store("memory://")


def test_a_scheme_claimed_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _discovery,
        "entry_points",
        lambda *, group: _fake_entry_points(
            ("memory", "eventbus.core._memory:open_memory_store"),
            ("Memory", "other.backend:open"),
        ),
    )
    with pytest.raises(UnknownStoreError, match="registered more than once") as caught:
        open_store("memory://")
    assert "'other.backend:open'" in str(caught.value)


def test_scheme_matching_ignores_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _discovery,
        "entry_points",
        lambda *, group: _fake_entry_points(("MEM", "eventbus.core._memory:MemoryStore")),
    )
    # MemoryStore() takes no URL: the opener is called with the URL, so it fails loudly.
    with pytest.raises(TypeError):
        open_store("mem://")


def test_the_opener_gets_the_whole_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _discovery,
        "entry_points",
        lambda *, group: _fake_entry_points(("memory", "eventbus.core._memory:open_memory_store")),
    )
    with pytest.raises(ValueError, match=re.escape("'memory://named'")):
        open_store("memory://named")


def test_an_opener_that_returns_no_store_is_a_type_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _discovery, "entry_points", lambda *, group: _fake_entry_points(("text", "builtins:str"))
    )
    with pytest.raises(TypeError, match=r"'builtins:str' returned 'text://x'.*not an EventStore"):
        open_store("text://x")


@pytest.mark.parametrize("url", ["", "events.db", "/var/lib/events.db", "//host/path"])
def test_a_url_without_scheme_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(url)) + " has no scheme"):
        open_store(url)


def test_a_url_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="URL string, got b'memory://'"):
        open_store(b"memory://")  # type: ignore[arg-type]


def test_options_reach_the_opener_as_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def opener(url: str, **options: object) -> MemoryStore:
        seen.append((url, options))
        return MemoryStore()

    monkeypatch.setattr(
        _discovery, "entry_points", lambda *, group: _fake_entry_points(("kw", "test:opener"))
    )
    monkeypatch.setattr(importlib.metadata.EntryPoint, "load", lambda self: opener)
    token = lambda: "Bearer s3cret"  # noqa: E731 - a token source, as a user passes one
    store = open_store("kw://server/stream", headers={"Authorization": token})
    assert isinstance(store, MemoryStore)
    assert seen == [("kw://server/stream", {"headers": {"Authorization": token}})]


def test_an_opener_that_takes_no_options_refuses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="headers"):
        open_store("memory://", headers={})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nosuch://user:s3cret@host/x", "nosuch://user:***@host/x"),
        ("nosuch://user@host/x", "nosuch://user@host/x"),
        ("nosuch://host/x", "nosuch://host/x"),
    ],
)
def test_errors_never_show_a_password(
    monkeypatch: pytest.MonkeyPatch, url: str, shown: str
) -> None:
    monkeypatch.setattr(_discovery, "entry_points", lambda *, group: _fake_entry_points())
    with pytest.raises(UnknownStoreError) as caught:
        open_store(url)
    assert repr(shown) in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_schemeless_url_with_a_password_is_shown_redacted() -> None:
    with pytest.raises(ValueError, match=re.escape("'//user:***@host/x' has no scheme")):
        open_store("//user:s3cret@host/x")
