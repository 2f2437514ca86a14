"""Text input without the NUL character.

PostgreSQL text cannot hold U+0000, so a NUL anywhere in an input would fail deep in a
statement with the database's message. It is refused where input enters instead, with
an error that says where: request JSON (POST bodies, GET variables) by the router, and
string literals in documents by a validation rule, cached with the document.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, StringValueNode, ValidationRule

NUL_REFUSED = "Text values cannot contain the NUL character (U+0000)"


def nul_path(value: Any, path: str) -> str | None:
    """Where in a decoded JSON value a string holds a NUL, as a JSONPath (`$.a[3].b`)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = nul_path(key, path) or nul_path(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def may_hold_nul(json_text: str | bytes) -> bool:
    """Cheap test on the raw text: JSON can only spell a NUL as the escape \\u0000."""
    if isinstance(json_text, bytes):
        return b"\\u0000" in json_text
    return "\\u0000" in json_text


class NoNulInStrings(ValidationRule):
    """Refuses string literals in the document that hold a NUL."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            self.report_error(
                GraphQLError(f"{NUL_REFUSED}.", node, extensions={"code": "INVALID_TEXT"})
            )
