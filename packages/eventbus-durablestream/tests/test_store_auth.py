"""Headers (rotating tokens) and TLS verification reach the store's client; tokens stay secret."""

from __future__ import annotations

import itertools
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from eventbus.core import NEWEST
from eventbus.core.testing import make_record
from eventbus.durablestream import DurableStreamStore
from eventbus.durablestream._discovery import open_durablestream_store

if TYPE_CHECKING:
    from conftest import RecordingTransport


def test_headers_are_sent_and_callables_called_per_request(
    ds_url: str, caplog: pytest.LogCaptureFixture, recording: RecordingTransport
) -> None:
    tokens = (f"token-{n}" for n in itertools.count())
    path = f"/v1/stream/eventbus-auth-{uuid.uuid4().hex}"
    with (
        caplog.at_level(logging.DEBUG),
        DurableStreamStore(
            ds_url,
            path,
            headers={"Authorization": lambda: f"Bearer {next(tokens)}", "X-Team": "shop"},
            transport=recording,
        ) as store,
    ):
        store.append(make_record())
        store.read(NEWEST)
    sent = [r.headers["Authorization"] for r in recording.requests]
    assert len(sent) >= 3
    assert len(set(sent)) == len(sent)  # a fresh token for every request
    assert all(r.headers["X-Team"] == "shop" for r in recording.requests)
    assert all("token" not in str(r.url) for r in recording.requests)
    assert "token-" not in caplog.text
    assert "token-" not in repr(store)


def test_verify_is_handed_to_the_transport(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(
        (OSError, ValueError)
    ):  # httpx loads the CA file when building the transport
        DurableStreamStore("https://127.0.0.1:1", "/v1/stream/x", verify=str(missing))
    with pytest.raises(FileNotFoundError):
        open_durablestream_store(
            "durablestream+https://127.0.0.1:1/v1/stream/x", verify=str(missing)
        )


def test_without_verification_a_store_still_works(ds_url: str) -> None:
    with DurableStreamStore(
        ds_url, f"/v1/stream/eventbus-auth-{uuid.uuid4().hex}", verify=False
    ) as store:
        assert store.read(NEWEST).events == []


def test_open_durablestream_store_passes_headers(ds_url: str) -> None:
    recording_headers: list[str] = []

    def token() -> str:
        recording_headers.append("called")
        return "Bearer t"

    address = ds_url.removeprefix("http://")
    store = open_durablestream_store(
        f"durablestream+http://{address}/v1/stream/eventbus-auth-{uuid.uuid4().hex}",
        headers={"Authorization": token},
    )
    with store:
        store.read(NEWEST)
    assert recording_headers
