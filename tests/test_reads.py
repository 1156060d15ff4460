"""The read service: one home for the reads, the same operations as the client, and a client
that loads no FastAPI."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from datetime import UTC, datetime, timedelta

import pytest

from tracehouse import responses
from tracehouse.client import Client
from tracehouse.demo import sample_run
from tracehouse.store.reads import NotFound, ReadService

pytestmark = pytest.mark.both_stores  # and against a ClickHouse HTTP endpoint (conftest)

# What only a server has, so the client offers it and the read service does not: whether one
# answers, its live stream, and its quarantine (requests in its spool, not rows in the store).
CLIENT_ONLY = {"ping", "tail", "quarantined", "retry_quarantined", "drop_quarantined"}


def _operations(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def _parameters(signature: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_the_client_and_the_read_service_offer_the_same_operations():
    client, service = _operations(Client), _operations(ReadService)
    assert client.keys() >= CLIENT_ONLY
    assert client.keys() - CLIENT_ONLY == service.keys()
    for name, signature in service.items():
        # The same parameters, in the same order, with the same defaults ("full" == Mode.FULL),
        # and the same models returned.
        assert _parameters(client[name]) == _parameters(signature), name
        returns = [typing.get_type_hints(getattr(cls, name))["return"] for cls in (Client, ReadService)]
        assert returns[0] == returns[1], name


def test_the_client_loads_no_fastapi_and_no_server():
    code = (
        "import sys, tracehouse.client\n"
        "loaded = [m for m in ('fastapi', 'starlette', 'tracehouse.api', 'tracehouse.ingest.receiver',"
        " 'tracehouse.store.reads', 'tracehouse.store.queries') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_read_service_loads_no_fastapi():
    code = "import sys, tracehouse.store.reads\nprint('fastapi' in sys.modules, 'tracehouse.api' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_not_found_is_one_error_for_both_faces():
    from tracehouse import client

    assert NotFound is responses.NotFound
    assert issubclass(client.NotFound, responses.NotFound) and issubclass(client.NotFound, client.ClientError)


def test_reads_answer_with_the_response_models_and_stay_in_their_tenant(store):
    older = sample_run(1, started_at=datetime.now(UTC) - timedelta(hours=2), agent="planner")
    newer = sample_run(2, agent="support-bot", fail=True)
    theirs = sample_run(3, tenant="other")
    for sample in (older, newer, theirs):
        store.write(sample.nodes, sample.events)
    reads = ReadService(store, "default")

    history = reads.history()
    assert all(isinstance(item, responses.HistoryItem) for item in history)
    top = [item for item in history if item.run_id in (older.run_id, newer.run_id)]
    assert [(i.run_id, i.agent, i.status) for i in top] == [
        (newer.run_id, "support-bot", "failed"),
        (older.run_id, "planner", "success"),
    ]
    assert "budget-checker" in {item.agent for item in history}  # sub-agent runs are listed, by their agent
    assert [i.run_id for i in reads.history(agent="planner")] == [older.run_id]
    assert theirs.run_id not in {i.run_id for i in history}

    logs = reads.logs(older.run_id)
    assert isinstance(logs, responses.LogsResponse) and logs.run_id == older.run_id
    assert logs.summary.total_nodes == len(logs.nodes) > 0
    replayed = reads.events(older.run_id, "transcript")
    assert replayed.mode == "transcript" and {e.kind for e in replayed.events} == {"message"}
    resumed = reads.resume(older.run_id, until_checkpoint="after-search")
    assert resumed.checkpoint is not None and resumed.checkpoint.id == "after-search"
    assert sum(row["runs"] for row in reads.stats()) == 4  # two runs, each with a sub-agent run

    # What is not there, or is another tenant's, is NotFound; bad arguments are ValueError.
    for missing in (
        lambda: reads.logs(theirs.run_id),
        lambda: reads.events("no-such-run"),
        lambda: reads.resume(older.run_id, until_checkpoint="no-such-checkpoint"),
        lambda: reads.conversation("no-such-conversation"),
        lambda: reads.delete_run(theirs.run_id),
    ):
        with pytest.raises(NotFound):
            missing()
    for bad in (lambda: reads.history(limit=0), lambda: reads.events(older.run_id, "nope")):
        with pytest.raises(ValueError):
            bad()
    assert ReadService(store, "other").logs(theirs.run_id).run_id == theirs.run_id

    deleted = reads.delete_run(newer.run_id)
    assert isinstance(deleted, responses.Deleted) and deleted.total > 0
    assert newer.run_id not in {i.run_id for i in reads.history()}
    assert (
        reads.set_retention(60, 7)
        == reads.retention()
        == responses.RetentionSettings(retention_days=60, payload_retention_days=7)
    )
