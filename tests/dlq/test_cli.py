"""``o2c dlq`` through typer's CliRunner, against the test Redis."""

from __future__ import annotations

import json
import sys

import pytest
import redis
from typer.testing import CliRunner

from config import load_settings
from o2c_workers.cli import cli
from o2c_workers.dlq import Status
from o2c_workers.receiver.replan import build_dlq
from tests.dlq.conftest import worker_entry
from tests.refusing import out_of_memory, private_redis  # noqa: F401


@pytest.fixture
def run(redis_url):
    runner = CliRunner()

    def invoke(*args, input=None, **env):
        return runner.invoke(cli, ["dlq", *args], input=input,
                             env={"O2C_REDIS_URL": redis_url, "COLUMNS": "200", **env})

    return invoke


@pytest.fixture
def seeded(store):
    holds = [store.add(worker_entry(n)) for n in range(3)]
    other = store.add(worker_entry(7, category="exhausted", domain="order"))
    return holds, other


def test_list_as_a_table_and_as_json(run, seeded):
    holds, other = seeded
    result = run("list", "--category", "credit_hold")
    assert result.exit_code == 0, result.output
    assert all(e.id in result.stdout for e in holds) and other.id not in result.stdout
    assert "credit hold on the account" in result.stdout
    result = run("list", "--json", "--domain", "order", "--since", "1h")
    data = json.loads(result.stdout)
    assert [e["id"] for e in data["entries"]] == [other.id]
    result = run("list", "--json", "--trace-key", holds[1].trace_key, "--limit", "1")
    assert json.loads(result.stdout)["entries"][0]["id"] == holds[1].id
    result = run("list", "--json", "--status", "resolved")
    assert json.loads(result.stdout)["total"] == 0


def test_show_and_stats(run, seeded):
    holds, _ = seeded
    result = run("show", holds[0].id)
    assert result.exit_code == 0, result.output
    assert "credit_hold" in result.stdout and "BusinessError" in result.stdout
    data = json.loads(run("show", holds[0].id, "--json").stdout)
    assert data["entry"]["payload"] == holds[0].payload
    missing = run("show", "nope")
    assert missing.exit_code == 1 and "no dead letter 'nope'" in missing.stderr
    stats = json.loads(run("stats", "--json").stdout)
    assert stats["open_by_category"] == {"credit_hold": 3, "exhausted": 1}
    assert stats["oldest_open"]["id"] == holds[0].id
    table = run("stats").stdout
    assert "credit_hold" in table and f"oldest open: {holds[0].id}" in table


def test_export_json_lines_to_stdout_and_to_a_file(run, seeded, tmp_path):
    holds, _ = seeded
    result = run("export", "--category", "credit_hold")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["id"] for e in lines] == [e.id for e in holds]
    assert "exported 3 dead letter(s)" in result.stderr
    target = tmp_path / "dlq.jsonl"
    assert run("export", "--output", str(target)).exit_code == 0
    assert len(target.read_text().splitlines()) == 4


def test_requeue_by_id_all_and_dry_run(run, seeded, store, redis_client):
    holds, other = seeded
    dry = run("requeue", "--all", "--dry-run", "--json")
    assert json.loads(dry.stdout)["count"] == 4 and redis_client.llen("pricing") == 0
    result = run("requeue", holds[0].id)
    assert result.exit_code == 0, result.output
    assert "1 requeued" in result.stdout
    result = run("requeue", "--category", "credit_hold")
    assert "2 requeued" in result.stdout
    assert redis_client.llen("pricing") == 3 and store.ids() == [other.id]
    again = run("requeue", holds[0].id)
    assert again.exit_code == 1 and "requeued, not open" in again.stdout
    nothing = run("requeue")
    assert nothing.exit_code == 1 and "--all" in nothing.stderr


def test_requeue_on_a_quiet_day_exits_0_but_an_unknown_id_is_an_error(run, store):
    for args in (["--all"], ["--category", "credit_hold"], ["--all", "--dry-run"]):
        result = run("requeue", *args)
        assert result.exit_code == 0, result.output
        assert "nothing to requeue: no open dead letter matches" in result.stdout
    result = run("requeue", "--all", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["count"] == 0
    store.add(worker_entry(1, category="exhausted"))
    result = run("requeue", "--category", "credit_hold")
    assert result.exit_code == 0 and "nothing to requeue" in result.stdout
    missing = run("requeue", "1764328000123-3f9a0c1b2d")
    assert missing.exit_code == 1
    assert "no dead letter '1764328000123-3f9a0c1b2d'" in missing.stdout


@pytest.mark.slow
def test_edit_with_set_and_with_the_editor(run, store, tmp_path):
    entry = store.add(worker_entry(1))
    result = run("edit", entry.id, "--set", "fail.pricing=null", "--set", "seen.0=erp")
    assert result.exit_code == 0, result.output
    assert store.get(entry.id).payload["fail"] == {"pricing": None}
    assert store.get(entry.id).payload["seen"] == ["erp"]
    editor = tmp_path / "editor.py"
    editor.write_text("import json, sys\np = sys.argv[1]\nd = json.load(open(p))\n"
                      "d['fail'] = {}\njson.dump(d, open(p, 'w'))\n")
    result = run("edit", entry.id, EDITOR=f"{sys.executable} {editor}")
    assert result.exit_code == 0, result.output
    after = store.get(entry.id)
    assert after.payload["fail"] == {} and after.original_payload == entry.payload


@pytest.mark.slow
def test_an_invalid_edit_is_refused_with_a_clear_error(run, store, tmp_path):
    entry = store.add(worker_entry(1, payload={
        "sobject_type": "Opportunity", "record": {"Id": "0065g0000000001", "Amount": "1.0"}}))
    result = run("edit", entry.id, "--set", "record.Amount=plenty")
    assert result.exit_code == 1
    assert "Opportunity does not validate: Amount" in result.stderr
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'w').write('{not json')\n")
    result = run("edit", entry.id, EDITOR=f"{sys.executable} {editor}")
    assert result.exit_code == 1 and "not JSON" in result.stderr
    assert store.get(entry.id) == entry


def test_purge_asks_unless_yes_and_leaves_an_audit_record(run, seeded, store):
    holds, other = seeded
    refused = run("purge", holds[0].id, input="n\n")
    assert refused.exit_code == 1 and "nothing purged" in refused.stderr
    assert store.get(holds[0].id).status is Status.OPEN
    confirmed = run("purge", holds[0].id, "--reason", "test deal", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert store.get(holds[0].id).status is Status.PURGED
    result = run("purge", "--category", "credit_hold", "--yes")
    assert "2 purged" in result.stdout
    assert store.ids() == [other.id]
    [record] = store.audit_log(entry_id=holds[0].id)
    assert record["action"] == "purge" and record["actor"].startswith("cli")
    assert record["detail"]["reason"] == "test deal"


def test_unreachable_redis_is_a_clear_error(run):
    result = run("list", O2C_REDIS_URL="redis://127.0.0.1:1/0")
    assert result.exit_code == 2
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in result.stderr


@pytest.mark.slow
def test_redis_refusing_writes_is_a_clear_error_and_changes_nothing(
        run, private_redis) -> None:  # noqa: F811
    client = redis.Redis.from_url(private_redis.url)
    store = build_dlq(load_settings(redis_url=private_redis.url), client=client,
                      actor="test").store
    entry = store.add(worker_entry(1))
    with out_of_memory(client):
        result = run("edit", entry.id, "--set", "StageName=Closed Won",
                     O2C_REDIS_URL=private_redis.url)
    assert result.exit_code == 2, result.output
    assert "refuses writes" in result.stderr and "OutOfMemoryError" in result.stderr
    assert "Traceback" not in result.output
    assert store.get(entry.id).rev == entry.rev
    client.close()
