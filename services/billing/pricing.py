"""The pricing engine: price plans, usage events, charge models, invoices. Pure.

Nothing here touches a database, a clock or a file. `lastmile billing rate` feeds it
parsed JSON; the database-backed invoicing aggregates quantities in SQL and calls
`price_invoice` (or `price_line`) with them, so both paths price with the same code.

The rules are the public contract ("Price plan and usage events for `lastmile billing
rate`"). Where the contract is silent this module decides, and says so where it does:

- Arithmetic is exact: it runs in a 200-digit context that traps `Inexact`, and the
  only rounding is the contract's half-up rounding of each line to the minor unit.
- A line's quantity is written in canonical form ("2.50" kg + "2.50" kg → "5").
- The `minimum_commitment` line has quantity "1" and the shortfall as its amount.
- Positions in messages are 0-based, as in JSON paths: `charge 2` is `charges[2]`.
- Plans reject unknown fields, so a typo such as "free_unit" cannot silently bill the
  full price. Events reject them too: the event shape is fixed by the contract.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import MAXYEAR, UTC, datetime
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import StrEnum
from itertools import pairwise
from typing import Any, TypeVar

from services.core.meters import Aggregation
from services.core.money import (
    Currency,
    currency_for,
    format_amount,
    format_quantity,
    parse_decimal,
    round_half_up,
)

MINIMUM_COMMITMENT = "minimum_commitment"
"""The meter name of the line that tops an invoice up to the plan's minimum."""

_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
_ZERO = Decimal(0)

_PLAN_FIELDS = frozenset({"code", "currency", "minimum", "charges"})
_CHARGE_FIELDS = frozenset(
    {"meter", "model", "aggregation", "tiers", "unit_price", "free_units",
     "package_size", "package_price"}
)  # fmt: skip
_TIER_FIELDS = frozenset({"up_to", "unit_price"})
_EVENT_FIELDS = frozenset({"id", "tenant", "meter", "quantity", "at", "key"})

_PERIOD = re.compile(r"(\d{4})-(\d{2})", re.ASCII)
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


class PricingError(ValueError):
    """Input that cannot be priced; the message names the offending item."""


class ChargeModel(StrEnum):
    """How a charge turns a billable quantity into an amount."""

    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"


# The optional pricing fields each model needs; every other one must be absent.
_MODEL_NEEDS: Mapping[ChargeModel, frozenset[str]] = {
    ChargeModel.PER_UNIT: frozenset({"unit_price"}),
    ChargeModel.GRADUATED: frozenset({"tiers"}),
    ChargeModel.VOLUME: frozenset({"tiers"}),
    ChargeModel.PACKAGE: frozenset({"package_size", "package_price"}),
}
_PRICING_FIELDS = ("tiers", "unit_price", "package_size", "package_price")

_Choice = TypeVar("_Choice", ChargeModel, Aggregation)


@dataclass(frozen=True)
class Tier:
    """A price band; `up_to` is inclusive and cumulative, None means unbounded."""

    up_to: Decimal | None
    unit_price: Decimal

    def __post_init__(self) -> None:
        if self.up_to is not None and self.up_to <= 0:
            raise PricingError(f"up_to {_show(self.up_to)} must be positive")
        _check_not_negative("unit_price", self.unit_price)


@dataclass(frozen=True)
class Charge:
    """How one meter is billed. Checks its own consistency, whoever builds it."""

    meter: str
    model: ChargeModel
    aggregation: Aggregation = Aggregation.SUM
    tiers: tuple[Tier, ...] = ()
    unit_price: Decimal | None = None
    free_units: Decimal = _ZERO
    package_size: Decimal | None = None
    package_price: Decimal | None = None

    def __post_init__(self) -> None:
        if not self.meter:
            raise PricingError('"meter" must be a non-empty string')
        if self.meter == MINIMUM_COMMITMENT:
            raise PricingError(f"meter {_show(MINIMUM_COMMITMENT)} is reserved for the minimum")
        given = {name for name in _PRICING_FIELDS if getattr(self, name) not in (None, ())}
        needed = _MODEL_NEEDS[self.model]
        missing, extra = sorted(needed - given), sorted(given - needed)
        if missing:
            raise PricingError(f"model {self.model} needs {_show(missing[0])}")
        if extra:
            raise PricingError(f"{_show(extra[0])} does not apply to model {self.model}")
        _check_not_negative("free_units", self.free_units)
        if self.unit_price is not None:
            _check_not_negative("unit_price", self.unit_price)
        if self.package_size is not None and self.package_size <= 0:
            raise PricingError(f"package_size {_show(self.package_size)} must be positive")
        if self.package_price is not None:
            _check_not_negative("package_price", self.package_price)
        if self.tiers:
            _check_tiers(self.tiers)


@dataclass(frozen=True)
class Plan:
    """A price plan: the charges in invoice order and an optional minimum total."""

    code: str
    currency: Currency
    minimum: Decimal
    charges: tuple[Charge, ...]

    def __post_init__(self) -> None:
        if not self.code:
            raise PricingError('"code" must be a non-empty string')
        if not self.charges:
            raise PricingError('"charges" must list at least one charge')
        _check_not_negative("minimum", self.minimum)
        if round_half_up(self.minimum, self.currency) != self.minimum:
            raise PricingError(
                f"minimum {_show(self.minimum)} has more digits than {self.currency.code}"
                f" allows ({self.currency.minor_units})"
            )
        first_index: dict[str, int] = {}
        for index, charge in enumerate(self.charges):
            earlier = first_index.setdefault(charge.meter, index)
            if earlier != index:
                raise PricingError(
                    f"charge {index} (meter {_show(charge.meter)}) repeats the meter of"
                    f" charge {earlier}; a meter is billed by one charge"
                )

    def charge_for(self, meter: str) -> Charge | None:
        """The charge that bills `meter`, if the plan has one."""
        return next((charge for charge in self.charges if charge.meter == meter), None)


@dataclass(frozen=True)
class Period:
    """A calendar month in UTC: `start <= at < end`."""

    year: int
    month: int

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The next period's start, which is excluded."""
        if self.month == 12:
            return datetime(self.year + 1, 1, 1, tzinfo=UTC)
        return datetime(self.year, self.month + 1, 1, tzinfo=UTC)

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class UsageEvent:
    """One metered fact. Two events with the same id are the same fact only if equal."""

    id: str
    tenant: str
    meter: str
    quantity: Decimal
    at: datetime
    key: str | None = None

    def __post_init__(self) -> None:
        for name in ("id", "tenant", "meter"):
            if not getattr(self, name):
                raise PricingError(f"{_show(name)} must be a non-empty string")
        _check_not_negative("quantity", self.quantity)
        if self.at.tzinfo is None:
            raise PricingError(f"timestamp {_show(self.at.isoformat())} has no UTC offset")
        if self.key == "":
            raise PricingError('"key" must be a non-empty string when given')


@dataclass(frozen=True)
class Line:
    """An invoice line: the quantity before free units, the rounded amount."""

    meter: str
    quantity: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Invoice:
    """One tenant's priced usage; `subtotal` excludes the minimum-commitment line."""

    currency: Currency
    lines: tuple[Line, ...]
    subtotal: Decimal
    total: Decimal

    def as_json(self) -> dict[str, Any]:
        """The contract's invoice object, without its `tenant` key."""
        return {
            "lines": [
                {
                    "meter": line.meter,
                    "quantity": format_quantity(line.quantity),
                    "amount": format_amount(line.amount, self.currency),
                }
                for line in self.lines
            ],
            "subtotal": format_amount(self.subtotal, self.currency),
            "total": format_amount(self.total, self.currency),
        }


@dataclass(frozen=True)
class RatingError:
    """An event that was read but not counted, and why."""

    event: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"event": self.event, "message": self.message}

    def __str__(self) -> str:
        return f"event {_show(self.event)}: {self.message}"


@dataclass(frozen=True)
class RatingResult:
    """What `rate` produces: invoices by tenant (sorted by tenant id) and errors."""

    period: Period
    currency: Currency
    invoices: Mapping[str, Invoice]
    errors: tuple[RatingError, ...]

    def as_json(self) -> dict[str, Any]:
        """The contract's output document of `lastmile billing rate --json`."""
        return {
            "period": str(self.period),
            "currency": self.currency.code,
            "invoices": [
                {"tenant": tenant, **invoice.as_json()} for tenant, invoice in self.invoices.items()
            ],
            "errors": [error.as_json() for error in self.errors],
        }


# --- parsing ------------------------------------------------------------------------


def parse_plan(data: object) -> Plan:
    """Validate a plan as decoded from PLAN.json and build it."""
    try:
        plan = _object(data, _PLAN_FIELDS)
        code = _text(plan, "code")
        currency = _currency(_required(plan, "currency"))
        minimum = _decimal(_given(plan, "minimum", "0"), "minimum")
        raw_charges = _required(plan, "charges")
        if not isinstance(raw_charges, list) or not raw_charges:
            raise PricingError('"charges" must be a non-empty list')
    except PricingError as error:
        raise PricingError(f"plan: {error}") from None
    charges = tuple(_parse_charge(index, raw) for index, raw in enumerate(raw_charges))
    try:
        return Plan(code, currency, minimum, charges)
    except PricingError as error:
        raise PricingError(f"plan: {error}") from None


def parse_event(data: object) -> UsageEvent:
    """Validate one usage event as decoded from a line of EVENTS.jsonl.

    Only the event's own shape is checked here; whether its meter is in the plan is
    `rate`'s business, which reports such events in `errors` instead of failing.
    """
    raw_id = data.get("id") if isinstance(data, Mapping) else None
    where = f"event {_show(raw_id)}" if isinstance(raw_id, str) and raw_id else "event"
    try:
        event = _object(data, _EVENT_FIELDS)
        key = event.get("key")
        if key is not None and not isinstance(key, str):
            raise PricingError(f'"key" must be a string, not {_show(key)}')
        return UsageEvent(
            id=_text(event, "id"),
            tenant=_text(event, "tenant"),
            meter=_text(event, "meter"),
            quantity=_decimal(_required(event, "quantity"), "quantity"),
            at=_timestamp(_required(event, "at")),
            key=key,
        )
    except PricingError as error:
        raise PricingError(f"{where}: {error}") from None


def parse_period(text: str) -> Period:
    """Read 'YYYY-MM' as the UTC month [first instant, first instant of next month)."""
    match = _PERIOD.fullmatch(text) if isinstance(text, str) else None
    year, month = (int(match[1]), int(match[2])) if match else (0, 0)
    if year == 0 or not 1 <= month <= 12:
        raise PricingError(f'invalid period {_show(text)}: expected YYYY-MM, e.g. "2026-11"')
    if (year, month) == (MAXYEAR, 12):
        raise PricingError(f"invalid period {_show(text)}: its end is past year {MAXYEAR}")
    return Period(year, month)


def _parse_charge(index: int, data: object) -> Charge:
    meter = data.get("meter") if isinstance(data, Mapping) else None
    where = f"charge {index}" + (f" (meter {_show(meter)})" if isinstance(meter, str) else "")
    try:
        charge = _object(data, _CHARGE_FIELDS)
        return Charge(
            meter=_text(charge, "meter"),
            model=_choice(ChargeModel, _required(charge, "model"), "model"),
            aggregation=_choice(Aggregation, _given(charge, "aggregation", "sum"), "aggregation"),
            tiers=() if (tiers := _given(charge, "tiers", None)) is None else _parse_tiers(tiers),
            unit_price=_optional_decimal(charge, "unit_price"),
            free_units=_decimal(_given(charge, "free_units", "0"), "free_units"),
            package_size=_optional_decimal(charge, "package_size"),
            package_price=_optional_decimal(charge, "package_price"),
        )
    except PricingError as error:
        raise PricingError(f"{where}: {error}") from None


def _parse_tiers(data: object) -> tuple[Tier, ...]:
    if not isinstance(data, list) or not data:
        raise PricingError('"tiers" must be a non-empty list')
    tiers = []
    for index, raw in enumerate(data):
        try:
            tier = _object(raw, _TIER_FIELDS)
            up_to = _required(tier, "up_to")
            tiers.append(
                Tier(
                    up_to=None if up_to is None else _decimal(up_to, "up_to"),
                    unit_price=_decimal(_required(tier, "unit_price"), "unit_price"),
                )
            )
        except PricingError as error:
            raise PricingError(f"tier {index}: {error}") from None
    return tuple(tiers)


# --- pricing ------------------------------------------------------------------------


def aggregate(aggregation: Aggregation, events: Iterable[UsageEvent]) -> Decimal:
    """One meter's quantity for a period from its (deduplicated, in-period) events."""
    with localcontext(_EXACT):
        match aggregation:
            case Aggregation.SUM:
                return sum((event.quantity for event in events), _ZERO)
            case Aggregation.COUNT:
                return Decimal(sum(1 for _ in events))
            case Aggregation.MAX:
                return max((event.quantity for event in events), default=_ZERO)
            case Aggregation.UNIQUE_COUNT:
                keys: set[str] = set()
                for event in events:
                    if event.key is None:
                        raise PricingError(f"event {_show(event.id)}: {_no_key(event.meter)}")
                    keys.add(event.key)
                return Decimal(len(keys))


def price_line(charge: Charge, quantity: Decimal, currency: Currency) -> Line:
    """Price one charge for an aggregated quantity: free units, model, then rounding."""
    if quantity < 0:
        raise PricingError(f"meter {_show(charge.meter)}: quantity {_show(quantity)} is negative")
    with localcontext(_EXACT):
        billable = max(quantity - charge.free_units, _ZERO)
        exact = _exact_amount(charge, billable)
    return Line(charge.meter, quantity, round_half_up(exact, currency))


def price_invoice(plan: Plan, quantities_by_meter: Mapping[str, Decimal]) -> Invoice:
    """Price every charge of the plan (absent meters count as zero), then the minimum.

    A meter the plan does not know is a caller bug here, so it raises.
    """
    unknown = sorted(set(quantities_by_meter) - {charge.meter for charge in plan.charges})
    if unknown:
        raise PricingError(f"meter {_show(unknown[0])} is not in plan {_show(plan.code)}")
    lines = [
        price_line(charge, quantities_by_meter.get(charge.meter, _ZERO), plan.currency)
        for charge in plan.charges
    ]
    with localcontext(_EXACT):
        subtotal = sum((line.amount for line in lines), _ZERO)
        if subtotal < plan.minimum:
            lines.append(Line(MINIMUM_COMMITMENT, Decimal(1), plan.minimum - subtotal))
        total = max(subtotal, plan.minimum)
    return Invoice(plan.currency, tuple(lines), subtotal, total)


def rate(plan: Plan, events: Iterable[UsageEvent], period: Period) -> RatingResult:
    """Rate a stream of usage events against a plan for one period.

    Events are deduplicated by id over the whole stream, before the period filter,
    because an id names one fact whenever it happened. The first occurrence counts;
    a later one that differs is not counted and is reported in `errors`.

    Events the plan cannot price are reported in `errors` and not counted, rather
    than dropped silently: an event whose meter is not in the plan, and an event
    without a `key` on a `unique_count` meter. Errors concern the whole stream, in
    stream order, whatever the period.

    A tenant gets an invoice when at least one of its counted events falls in the
    period, so uncounted events never bill a minimum commitment on their own.
    """
    first_by_id: dict[str, UsageEvent] = {}
    errors: list[RatingError] = []
    counted: defaultdict[str, defaultdict[Charge, list[UsageEvent]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for event in events:
        first = first_by_id.get(event.id)
        if first is not None:
            if first != event:
                errors.append(RatingError(event.id, _conflict(first, event)))
            continue
        first_by_id[event.id] = event
        charge = plan.charge_for(event.meter)
        if charge is None:
            message = f"meter {_show(event.meter)} is not in plan {_show(plan.code)}"
            errors.append(RatingError(event.id, f"{message}; not counted"))
        elif charge.aggregation is Aggregation.UNIQUE_COUNT and event.key is None:
            errors.append(RatingError(event.id, f"{_no_key(event.meter)}; not counted"))
        elif period.contains(event.at):
            counted[event.tenant][charge].append(event)
    invoices = {
        tenant: price_invoice(
            plan,
            {
                charge.meter: aggregate(charge.aggregation, charge_events)
                for charge, charge_events in counted[tenant].items()
            },
        )
        for tenant in sorted(counted)
    }
    return RatingResult(period, plan.currency, invoices, tuple(errors))


def _exact_amount(charge: Charge, billable: Decimal) -> Decimal:
    """The unrounded amount; the Charge invariants guarantee the model's fields."""
    match charge.model:
        case ChargeModel.PER_UNIT:
            assert charge.unit_price is not None
            return billable * charge.unit_price
        case ChargeModel.GRADUATED:
            amount, floor = _ZERO, _ZERO
            for tier in charge.tiers:
                ceiling = billable if tier.up_to is None else min(billable, tier.up_to)
                if ceiling <= floor:
                    break
                amount += (ceiling - floor) * tier.unit_price
                floor = ceiling
            return amount
        case ChargeModel.VOLUME:
            tier = next(t for t in charge.tiers if t.up_to is None or billable <= t.up_to)
            return billable * tier.unit_price
        case ChargeModel.PACKAGE:
            assert charge.package_size is not None and charge.package_price is not None
            whole, part = divmod(billable, charge.package_size)
            return (whole + (1 if part else 0)) * charge.package_price


def _no_key(meter: str) -> str:
    return f'meter {_show(meter)} counts distinct keys but the event has no "key"'


def _conflict(first: UsageEvent, repeat: UsageEvent) -> str:
    differences = ", ".join(
        f"{field.name} {_show(getattr(repeat, field.name))}"
        f" instead of {_show(getattr(first, field.name))}"
        for field in fields(UsageEvent)
        if getattr(repeat, field.name) != getattr(first, field.name)
    )
    return f"repeats the id of an earlier event with different content ({differences}); not counted"


# --- validation helpers ---------------------------------------------------------------


def _show(value: object) -> str:
    """Quote a value for a message the way it is written in JSON."""
    if isinstance(value, Decimal):
        value = format(value, "f")
    elif isinstance(value, datetime):
        value = value.isoformat().replace("+00:00", "Z")
    return json.dumps(value, default=str)


def _object(data: object, allowed: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise PricingError(f"expected a JSON object, not {_show(data)}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PricingError(f"unknown field {', '.join(_show(name) for name in unknown)}")
    return data


def _required(data: Mapping[str, object], name: str) -> object:
    if name not in data:
        raise PricingError(f"{_show(name)} is missing")
    return data[name]


def _text(data: Mapping[str, object], name: str) -> str:
    value = _required(data, name)
    if not isinstance(value, str) or not value:
        raise PricingError(f"{_show(name)} must be a non-empty string, not {_show(value)}")
    return value


def _decimal(value: object, name: str) -> Decimal:
    """A decimal string; JSON numbers are refused, since they may be binary floats."""
    if not isinstance(value, str):
        raise PricingError(f"{name} {_show(value)} must be a decimal string")
    try:
        return parse_decimal(value)
    except ValueError as error:
        raise PricingError(f"{name} {error}") from None


def _given(data: Mapping[str, object], name: str, default: object) -> object:
    """An optional field's value; given as null it is absent, as everywhere in plans."""
    value = data.get(name)
    return default if value is None else value


def _optional_decimal(data: Mapping[str, object], name: str) -> Decimal | None:
    value = data.get(name)
    return None if value is None else _decimal(value, name)


def _choice(kind: type[_Choice], value: object, name: str) -> _Choice:
    for member in kind:
        if member.value == value:
            return member
    expected = ", ".join(member.value for member in kind)
    raise PricingError(f"unknown {name} {_show(value)} (expected {expected})")


def _currency(value: object) -> Currency:
    try:
        return currency_for(value) if isinstance(value, str) else currency_for("")
    except ValueError:
        raise PricingError(f"unknown currency {_show(value)}") from None


def _timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise PricingError(f"timestamp {_show(value)} must be a string")
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise PricingError(f"malformed timestamp {_show(value)}")
    if match["offset"] is None:
        raise PricingError(f'timestamp {_show(value)} has no UTC offset (add "Z")')
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except ValueError:
        raise PricingError(f"malformed timestamp {_show(value)}") from None


def _check_not_negative(name: str, value: Decimal) -> None:
    if value < 0:
        raise PricingError(f"{name} {_show(value)} is negative")


def _check_tiers(tiers: tuple[Tier, ...]) -> None:
    for index, tier in enumerate(tiers[:-1]):
        if tier.up_to is None:
            raise PricingError(f"tier {index}: up_to null is only allowed on the last tier")
    if tiers[-1].up_to is not None:
        raise PricingError('the last tier must have "up_to": null, so every quantity has a price')
    bounds = [tier.up_to for tier in tiers[:-1] if tier.up_to is not None]
    if any(lower >= upper for lower, upper in pairwise(bounds)):
        raise PricingError("tiers are not in ascending up_to order")
