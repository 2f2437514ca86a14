"""A recipient's tracking link: its token is the only key, so it must be unguessable
from any other link, and the page must not answer an unbounded stream of guesses."""

from __future__ import annotations

from services.api.ratelimit import RateLimits
from services.core.ids import _ALPHABET
from tests.factories import booking_input, graphql

BOOK_MANY = """
mutation BookMany($inputs: [BookDeliveryInput!]!) {
  bookDeliveries(inputs: $inputs) { results { delivery { trackingUrl } } }
}"""


def _neighbour(token: str, step: int) -> str:
    """The token `step` further on, were tokens counters (as they once were: id + 1)."""
    prefix, _, digits = token.partition("_")
    if len(digits) != 26 or any(c not in _ALPHABET for c in digits):
        return f"{prefix}_{digits[:-1]}{'x' if digits[-1:] != 'x' else 'y'}"
    value = 0
    for digit in digits:
        value = value * 32 + _ALPHABET.index(digit)
    value += step
    spelled = "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(26)))
    return f"{prefix}_{spelled}"


def _tracking_paths(client, token: str, count: int) -> list[str]:
    inputs = [booking_input(f"r-{n}") for n in range(count)]
    body = graphql(client, token, BOOK_MANY, {"inputs": inputs})
    urls = [r["delivery"]["trackingUrl"] for r in body["data"]["bookDeliveries"]["results"]]
    return ["/track/" + url.rsplit("/", 1)[1] for url in urls]


def test_one_link_leads_to_no_other_recipients_delivery(client, live):
    paths = _tracking_paths(client, live, 3)
    first = paths[0].rsplit("/", 1)[1]
    assert client.get(paths[0]).status_code == 200
    for step in range(1, 9):
        guess = "/track/" + _neighbour(first, step)
        assert guess not in paths
        assert client.get(guess).status_code == 404


def test_the_tracking_page_refuses_a_stream_of_guesses(app, client, live):
    app.state.rate_limits = RateLimits("memory://", tracking="5/minute")
    [path] = _tracking_paths(client, live, 1)
    answers = [client.get(f"/track/trk_guess{n}").status_code for n in range(5)]
    assert answers == [404] * 5
    refused = client.get(path)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
