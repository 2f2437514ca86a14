"""`billing rate`: the contract's command line, good input and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from services.billing.cli import billing
from tests.billing.test_pricing import CONTRACT_PLAN


def write_events(path: Path, *events: dict[str, Any] | str) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return path


def evt(id: str, meter: str = "deliveries", quantity: str = "1", **extra: str) -> dict[str, Any]:
    return {"id": id, "tenant": "t1", "meter": meter, "quantity": quantity,
            "at": "2026-11-03T10:00:00Z", **extra}  # fmt: skip


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(CONTRACT_PLAN))
    return path


def run(plan: Path, events: Path, *extra: str, period: str = "2026-11") -> Result:
    args = ["rate", "--plan", str(plan), "--events", str(events), "--period", period, *extra]
    return CliRunner().invoke(billing, args)


def test_the_group_is_named_billing() -> None:
    assert billing.name == "billing"
    assert "rate" in billing.commands


def test_rate_prints_the_contract_invoice_json(plan_file: Path, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "e.jsonl", evt("evt-1", quantity="1200"), "", evt("evt-1", quantity="1200")
    )
    result = run(plan_file, events, "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document["period"] == "2026-11"
    assert document["currency"] == "USD"
    assert document["errors"] == []
    [invoice] = document["invoices"]
    assert invoice["tenant"] == "t1"
    assert invoice["lines"][0] == {"meter": "deliveries", "quantity": "1200", "amount": "2900.00"}
    assert [line["meter"] for line in invoice["lines"]] == [
        "deliveries", "failed_attempts", "parcel_kg", "api_requests", "active_recipients"
    ]  # fmt: skip
    assert (invoice["subtotal"], invoice["total"]) == ("2900.00", "2900.00")


def test_errors_are_in_the_json_and_warned_on_stderr(plan_file: Path, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "e.jsonl", evt("evt-1"), evt("evt-1", quantity="2"), evt("evt-2", "teleports")
    )
    result = run(plan_file, events, "--json")
    assert result.exit_code == 0
    errors = json.loads(result.stdout)["errors"]
    assert [error["event"] for error in errors] == ["evt-1", "evt-2"]
    assert result.stderr == 'warning: 2 events not counted; see "errors"\n'


def test_without_json_a_readable_summary(plan_file: Path, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "e.jsonl", evt("evt-1", quantity="1200"), evt("evt-2", "teleports")
    )
    result = run(plan_file, events)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "Plan growth (USD), period 2026-11"
    assert "Tenant t1" in lines
    assert any(line.split() == ["deliveries", "1200", "2900.00"] for line in lines)
    assert any(line.split() == ["total", "2900.00"] for line in lines)
    assert 'event "evt-2": meter "teleports" is not in plan "growth"; not counted' in result.stdout


def test_no_usage_in_the_period(plan_file: Path, tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.jsonl", evt("evt-1"))
    document = json.loads(run(plan_file, events, "--json", period="2026-12").stdout)
    assert document == {"period": "2026-12", "currency": "USD", "invoices": [], "errors": []}
    assert "No usage in this period." in run(plan_file, events, period="2026-12").stdout


def bad_plan(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad-plan.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("plan_text", "message"),
    [
        ("{", "bad-plan.json: malformed JSON (Expecting property name enclosed in double quotes"),
        ('{"code": "a", "code": "b"}', 'bad-plan.json: duplicate key "code"'),
        ("[]", "plan: expected a JSON object, not []"),
        (
            json.dumps(CONTRACT_PLAN | {"currency": "XYZ"}),
            'plan: unknown currency "XYZ"',
        ),
        (
            json.dumps(CONTRACT_PLAN | {"charges": [{"meter": "m", "model": "flat"}]}),
            'charge 0 (meter "m"): unknown model "flat"',
        ),
    ],
)
def test_bad_plan_exits_2_with_a_message_and_no_output(
    tmp_path: Path, plan_text: str, message: str
) -> None:
    events = write_events(tmp_path / "e.jsonl", evt("evt-1"))
    result = run(bad_plan(tmp_path, plan_text), events, "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"id": "evt-1",'],
            "line 1: malformed JSON"
            " (Expecting property name enclosed in double quotes at column 16)",
        ),
        ([evt("evt-1"), "", "not json"], "line 3: malformed JSON (Expecting value at column 1)"),
        ([evt("evt-1"), "null"], "line 2: event: expected a JSON object, not null"),
        (['{"id": "a", "id": "b"}'], 'line 1: duplicate key "id"'),
        ([evt("evt-7", quantity="-3")], 'line 1: event "evt-7": quantity "-3" is negative'),
        (
            [evt("evt-7", quantity="lots")],
            'line 1: event "evt-7": quantity "lots" is not a decimal number',
        ),
        (
            [evt("evt-9", at="2026-13-01")],
            'line 1: event "evt-9": malformed timestamp "2026-13-01"',
        ),
        (
            [{k: v for k, v in evt("x").items() if k != "tenant"}],
            'line 1: event "x": "tenant" is missing',
        ),
    ],
)
def test_bad_events_exit_2_naming_the_line(
    plan_file: Path, tmp_path: Path, lines: list[Any], message: str
) -> None:
    result = run(plan_file, write_events(tmp_path / "e.jsonl", *lines), "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"Error: {tmp_path / 'e.jsonl'} {message}\n"


def test_events_that_are_not_utf8_exit_2(plan_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(json.dumps(evt("evt-1")).encode() + b"\n\xff\xfe\n")
    result = run(plan_file, path, "--json")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {path} line 2: not UTF-8 text\n"


@pytest.mark.parametrize("period", ["2026-13", "2026/11", "nov", "2026-1"])
def test_bad_period_exits_2(plan_file: Path, tmp_path: Path, period: str) -> None:
    result = run(
        plan_file, write_events(tmp_path / "e.jsonl", evt("evt-1")), "--json", period=period
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f'Error: invalid period "{period}": expected YYYY-MM, e.g. "2026-11"\n'


def test_missing_files_and_options_exit_2(plan_file: Path, tmp_path: Path) -> None:
    missing = run(plan_file, tmp_path / "nope.jsonl", "--json")
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert missing.stdout == ""
    no_period = CliRunner().invoke(
        billing, ["rate", "--plan", str(plan_file), "--events", str(plan_file)]
    )
    assert no_period.exit_code == 2
    assert "Missing option '--period'" in no_period.stderr


def test_summary_shows_the_minimum_top_up_between_subtotal_and_total(
    plan_file: Path, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "e.jsonl", evt("evt-1", "parcel_kg", "2.5"))
    rows = [line.split() for line in run(plan_file, events).stdout.splitlines()[-3:]]
    assert rows == [["subtotal", "0.25"], ["minimum_commitment", "1", "99.75"], ["total", "100.00"]]


def test_a_plan_whose_minimum_is_null_has_no_minimum(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({**CONTRACT_PLAN, "minimum": None}))
    result = run(plan, write_events(tmp_path / "e.jsonl", evt("evt-1", quantity="2")), "--json")
    assert result.exit_code == 0, result.output
    [invoice] = json.loads(result.stdout)["invoices"]
    assert "minimum_commitment" not in [line["meter"] for line in invoice["lines"]]
    assert invoice["total"] == "5.00"
