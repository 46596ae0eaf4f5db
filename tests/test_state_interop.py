"""The State Protocol against its TypeScript package (``@durable-streams/state``, pinned by
the reference server's lockfile): messages it writes materialize here to the state its own
``MaterializedState`` reaches, and messages this library stores are read by it.

The messages travel as records' JSON data, and as bare protocol messages in a stream on
the reference server (the protocol's own transport), written and read by each side with
its own client. Interop through ``DurableStreamStore``'s stream is not claimed: that store
wraps each event in its envelope, so a TypeScript reader of it sees envelopes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from eventbus.core import EventBus, MemoryStore
from eventbus.core.state import ChangeMessage, ControlMessage, Materializer, parse_message
from eventbus.core.testing import raw_record
from eventbus.durablestream import DurableStreamClient
from eventbus.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = (
    Path(os.environ.get("EVENTBUS_DS_SERVER_DIR", ROOT / "servers" / "durable-streams"))
    / "node_modules"
    / "@durable-streams"
    / "state"
    / "dist"
    / "index.js"
)

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not PACKAGE.exists(),
    reason="needs node and `npm ci` in servers/durable-streams",
)

_WRITE = """
import { MaterializedState, createStateSchema } from "%s"
const any = { "~standard": { version: 1, vendor: "test", validate: (v) => ({ value: v }) } }
const users = createStateSchema({ users: { schema: any, type: "user", primaryKey: "id" } }).users
const events = [
  users.insert({ value: { id: "u1", name: "Ann" } }),
  users.insert({ value: { id: "u2", name: "Cy" }, headers: { txid: "t1" } }),
  users.update({ value: { id: "u1", name: "Bo" }, oldValue: { id: "u1", name: "Ann" } }),
  users.upsert({ value: { id: "u3", name: "Di" } }),
  users.delete({ key: "u2" }),
]
const state = new MaterializedState()
state.applyBatch(events)
console.log(JSON.stringify({ events, state: Object.fromEntries(state.getType("user")) }))
"""

_READ = """
import { MaterializedState, isChangeEvent, isControlEvent } from "%s"
const messages = JSON.parse(process.argv[2])
const state = new MaterializedState()
state.applyBatch(messages.filter(isChangeEvent))
console.log(JSON.stringify({
  kinds: messages.map((m) => isChangeEvent(m) ? "change" : isControlEvent(m) ? "control" : "?"),
  state: Object.fromEntries(state.getType("user")),
}))
"""


_POST = """
const [url, body] = process.argv.slice(2)
const put = await fetch(url, { method: "PUT", headers: { "content-type": "application/json" } })
if (!put.ok) throw new Error(`create: ${put.status}`)
const json = { "content-type": "application/json" }
const post = await fetch(url, { method: "POST", headers: json, body })
if (!post.ok) throw new Error(`append: ${post.status}`)
console.log("{}")
"""

_GET = """
import { MaterializedState, isChangeEvent } from "%s"
const response = await fetch(`${process.argv[2]}?offset=-1`)
if (!response.ok) throw new Error(`read: ${response.status}`)
const state = new MaterializedState()
state.applyBatch((await response.json()).filter(isChangeEvent))
console.log(JSON.stringify(Object.fromEntries(state.getType("user"))))
"""


def _node(tmp_path: Path, source: str, *args: str) -> Any:
    script = tmp_path / "script.mjs"
    script.write_text(source.replace("%s", PACKAGE.as_uri()))
    result = subprocess.run(
        ["node", str(script), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_messages_written_by_the_typescript_package_materialize_here(
    tmp_path: Path, kind: str
) -> None:
    written = _node(tmp_path, _WRITE)
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "events.db")
    with store:
        # As another program would store them: bare protocol JSON, its own wire name.
        store.append_batch([raw_record("ts.state", json.dumps(e)) for e in written["events"]])
        store.append(raw_record("ts.other", json.dumps({"id": "not a message"})))
        materializer = Materializer()
        assert materializer.catch_up(store) == 5
    assert dict(materializer.collection("user").items()) == written["state"]
    assert written["state"] == {"u1": {"id": "u1", "name": "Bo"}, "u3": {"id": "u3", "name": "Di"}}


def test_messages_stored_by_this_library_are_read_by_the_typescript_package(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    with EventBus(store=store) as bus:
        bus.publish(ControlMessage("snapshot-start"))
        bus.publish(ChangeMessage.insert("user", "u1", {"name": "Ann"}, txid="t1"))
        bus.publish(ChangeMessage.insert("user", "u2", {"name": "Cy"}))
        bus.publish(ChangeMessage.update("user", "u1", {"name": "Bo"}, old_value={"name": "Ann"}))
        bus.publish(ChangeMessage.delete("user", "u2"))
        bus.publish(ControlMessage("snapshot-end"))
        messages = [json.loads(stored.data) for stored in bus.replay()]
        materializer = Materializer()
        materializer.catch_up(store)
    read = _node(tmp_path, _READ, json.dumps(messages))
    assert read["kinds"] == ["control", "change", "change", "change", "change", "control"]
    assert read["state"] == dict(materializer.collection("user").items()) == {"u1": {"name": "Bo"}}


def test_a_stream_the_typescript_package_writes_on_the_server_materializes_here(
    tmp_path: Path, ds_server_url: str
) -> None:
    written = _node(tmp_path, _WRITE)
    url = f"{ds_server_url}/v1/stream/state-from-ts-{tmp_path.name}"
    _node(tmp_path, _POST, url, json.dumps(written["events"]))
    materializer = Materializer()
    with DurableStreamClient(ds_server_url) as client:
        for item in client.read(url.removeprefix(ds_server_url)).json():
            message = parse_message(item)
            assert message is not None
            materializer.apply_message(message)
    assert dict(materializer.collection("user").items()) == written["state"]


def test_a_stream_written_here_on_the_server_is_read_by_the_typescript_package(
    tmp_path: Path, ds_server_url: str
) -> None:
    messages: list[ChangeMessage | ControlMessage] = [
        ControlMessage("snapshot-start"),
        ChangeMessage.insert("user", "u1", {"name": "Ann"}),
        ChangeMessage.insert("user", "u2", {"name": "Cy"}),
        ChangeMessage.update("user", "u1", {"name": "Bo"}),
        ChangeMessage.delete("user", "u2"),
        ControlMessage("snapshot-end"),
    ]
    path = f"/v1/stream/state-from-python-{tmp_path.name}"
    with DurableStreamClient(ds_server_url) as client:
        client.create(path, content_type="application/json")
        client.append_json_batch(path, [m.__event_encode__() for m in messages])
    assert _node(tmp_path, _GET, ds_server_url + path) == {"u1": {"name": "Bo"}}
