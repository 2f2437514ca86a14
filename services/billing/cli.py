"""`lastmile billing …`: the billing commands. `rate` is pure: files in, invoices out.

The others work on the configured database, each in one transaction. `consolidation`
needs the planner's cost model, which billing cannot import: `consolidation_command`
builds the command around whatever `CostModel` factory the `lastmile` assembler gives.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from services.billing.pricing import (
    MINIMUM_COMMITMENT,
    PricingError,
    RatingResult,
    UsageEvent,
    parse_event,
    parse_period,
    parse_plan,
    rate,
)
from services.core.money import format_amount, format_quantity
from services.core.usage import UsageError


class InputError(click.ClickException):
    """Bad input data: "Error: …" on stderr and exit code 2, like a usage error."""

    exit_code = 2


@click.group(name="billing")
def billing() -> None:
    """Usage, prices and invoices."""


@billing.command(name="rate")
@click.option(
    "--plan",
    "plan_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Price plan (JSON).",
)
@click.option(
    "--events",
    "events_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Usage events, one JSON object a line.",
)
@click.option("--period", required=True, metavar="YYYY-MM", help="The UTC month to rate.")
@click.option("--json", "as_json", is_flag=True, help="Print the invoice JSON of the contract.")
def rate_command(plan_path: Path, events_path: Path, period: str, as_json: bool) -> None:
    """Rate usage events against a price plan for one month, without a database.

    Events are counted once per id; repeats with different content and events the
    plan cannot price are listed under "errors" (the exit code stays 0).
    """
    try:
        month = parse_period(period)
        plan = parse_plan(_load_json(plan_path))
        result = rate(plan, _read_events(events_path), month)
    except PricingError as error:
        raise InputError(str(error)) from None
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        if result.errors:
            click.echo(f'warning: {_events_not_counted(result)}; see "errors"', err=True)
    else:
        click.echo(_summary(plan.code, result))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise PricingError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise PricingError(f"{path}: malformed JSON ({error})") from None
    except PricingError as error:
        raise PricingError(f"{path}: {error}") from None


def _read_events(path: Path) -> Iterator[UsageEvent]:
    """Parse EVENTS.jsonl lazily, naming the 1-based line of any bad event."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            where = f"{path} line {number}"
            try:
                text = raw.decode("utf-8-sig").rstrip("\r\n")
                if not text.strip():
                    continue
                event = parse_event(json.loads(text, object_pairs_hook=_unique_keys))
            except UnicodeDecodeError:
                raise PricingError(f"{where}: not UTF-8 text") from None
            except json.JSONDecodeError as error:
                message = f"{error.msg} at column {error.colno}"
                raise PricingError(f"{where}: malformed JSON ({message})") from None
            except PricingError as error:
                raise PricingError(f"{where}: {error}") from None
            yield event


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse duplicate keys, which `json` would otherwise resolve by keeping the last."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PricingError(f"duplicate key {json.dumps(key)}")
        result[key] = value
    return result


def _events_not_counted(result: RatingResult) -> str:
    count = len(result.errors)
    return f"{count} event{'s' if count != 1 else ''} not counted"


def _summary(plan_code: str, result: RatingResult) -> str:
    """Charge lines, subtotal, then the minimum top-up (which the subtotal excludes), total."""
    currency = result.currency
    out = [f"Plan {plan_code} ({currency.code}), period {result.period}"]
    if not result.invoices:
        out.append("No usage in this period.")
    for tenant, invoice in result.invoices.items():
        charges = [line for line in invoice.lines if line.meter != MINIMUM_COMMITMENT]
        top_up = [line for line in invoice.lines if line.meter == MINIMUM_COMMITMENT]
        rows = [(line.meter, format_quantity(line.quantity), line.amount) for line in charges]
        rows.append(("subtotal", "", invoice.subtotal))
        rows += [(line.meter, format_quantity(line.quantity), line.amount) for line in top_up]
        rows.append(("total", "", invoice.total))
        out += ["", f"Tenant {tenant}"]
        out += [
            f"  {label:<24} {quantity:>14} {format_amount(amount, currency):>14}"
            for label, quantity, amount in rows
        ]
    if result.errors:
        out += ["", f"Errors ({_events_not_counted(result)}):"]
        out += [f"  {error}" for error in result.errors]
    return "\n".join(out)


@billing.command(name="ingest")
@click.option(
    "--events",
    "events_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Usage events, one JSON object a line (the rate contract's shape, plus area).",
)
@click.option("--json", "as_json", is_flag=True)
def ingest_command(events_path: Path, as_json: bool) -> None:
    """Record usage events; all or nothing. Conflicting repeats are reported, exit 1."""
    from services.billing.metering import parse_usage
    from services.core.db import transaction
    from services.core.usage import record_usage

    try:
        events = [
            parse_usage(_json_line(raw, f"{events_path} line {n}"), f"{events_path} line {n}")
            for n, raw in enumerate(events_path.read_bytes().splitlines(), start=1)
            if raw.strip()
        ]
        with transaction() as session:
            report = record_usage(session, events)
    except (UsageError, PricingError) as error:
        raise InputError(str(error)) from None
    document = {
        "recorded": report.recorded,
        "duplicates": report.duplicates,
        "conflicts": [str(conflict) for conflict in report.conflicts],
    }
    click.echo(
        json.dumps(document) if as_json else "\n".join(f"{k}: {v}" for k, v in document.items())
    )
    if report.conflicts:
        sys.exit(1)


@billing.command(name="close")
@click.option("--period", required=True, metavar="YYYY-MM")
@click.option("--finalize", is_flag=True, help="Finalize and number the invoices.")
@click.option("--json", "as_json", is_flag=True)
def close_command(period: str, finalize: bool, as_json: bool) -> None:
    """Draft (or finalize) every invoice of a period; safe to run again."""
    from services.billing.invoicing import InvoiceError, close_period
    from services.core.db import transaction

    try:
        parse_period(period)
        with transaction() as session:
            report = close_period(session, period, finalize)
    except (PricingError, InvoiceError) as error:
        raise InputError(str(error)) from None
    document = report.as_json()
    click.echo(
        json.dumps(document) if as_json else "\n".join(f"{k}: {v}" for k, v in document.items())
    )


@billing.command(name="reconcile")
@click.option("--period", default=None, metavar="YYYY-MM", help="One period (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings JSON.")
def reconcile_command(period: str | None, as_json: bool) -> None:
    """Check the books; the findings are stored and printed. Exit 1 on any discrepancy."""
    from services.billing.reconciliation import reconcile
    from services.core.db import transaction

    try:
        with transaction() as session:
            result = reconcile(session, period)
    except PricingError as error:
        raise InputError(str(error)) from None
    document = result.as_json()
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(f"checked: {document['checked']}")
        for finding in result.findings:
            click.echo(f"  [{finding.check}] {finding.subject}: {finding.message}")
        click.echo("ok" if not result.findings else f"{len(result.findings)} discrepancies")
    if result.findings:
        sys.exit(1)


def consolidation_command(cost_model: Callable[[], Any]) -> click.Command:
    """`billing consolidation`, computed with the cost model the assembler provides."""

    @click.command(name="consolidation")
    @click.option("--area", "area_code", required=True, help="Service area code, e.g. demo.")
    @click.option("--date", "day", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
    @click.option("--json", "as_json", is_flag=True)
    def consolidation(area_code: str, day: datetime, as_json: bool) -> None:
        """What sharing routes saved on a planned area-day, and each merchant's share."""
        from services.billing.consolidation import ConsolidationError, consolidation_report
        from services.core.db import transaction

        try:
            with transaction() as session:
                report = consolidation_report(session, area_code, day.date(), cost_model())
        except ConsolidationError as error:
            raise InputError(str(error)) from None
        if as_json:
            click.echo(json.dumps(report))
            return
        click.echo(f"shared cost {report['shared_cost']}, saving {report['saving_pct']}%")
        for tenant, figures in report["standalone"].items():
            click.echo(f"  {tenant}: alone {figures['cost']}, allocated {figures['allocated']}")

    return consolidation


def _json_line(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8-sig"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise PricingError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise PricingError(f"{where}: malformed JSON ({error.msg})") from None
