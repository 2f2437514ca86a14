"""`lastmile billing …`: the billing commands. `rate` is pure: files in, invoices out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from services.billing.money import format_amount, format_quantity
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
