"""A local SMTP server (aiosmtpd) that keeps what it receives, for tests that read mail."""

from __future__ import annotations

import email
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str, timeout: float = 10.0) -> list[Message]:
        """The messages to `address`, waiting up to `timeout` seconds for one to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages if address.lower() in m["To"].lower()]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def last_link(self, address: str, pattern: str = r"https?://\S+") -> str:
        """The first link matching `pattern` in the newest mail to `address`."""
        messages = self.to(address)
        assert messages, f"no mail to {address}"
        body = messages[-1].get_payload(decode=True).decode()
        match = re.search(pattern, body)
        assert match, body
        return match.group(0)


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, str]]:
    """A running SMTP server on a free loopback port, and its smtp:// URL."""
    mailbox = Mailbox()
    with socket.socket() as probe:  # a free port (aiosmtpd cannot be asked for port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()
