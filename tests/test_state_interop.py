"""The State Protocol against its TypeScript package (``@durable-streams/state``, pinned by
the reference server's lockfile): messages it writes materialize here to the state its own
``MaterializedState`` reaches, and messages this library stores are read by it.

Stream-level interop through ``DurableStreamStore`` is not claimed: that store wraps each
event in its envelope, so a TypeScript reader of its stream sees envelopes. The messages
travel here as the records' JSON data.
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
from eventbus.core.state import ChangeMessage, ControlMessage, Materializer
from eventbus.core.testing import raw_record
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


def _node(tmp_path: Path, source: str, *args: str) -> Any:
    script = tmp_path / "script.mjs"
    script.write_text(source % PACKAGE.as_uri())
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
