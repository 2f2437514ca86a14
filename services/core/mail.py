"""Outgoing e-mail: over SMTP (`LASTMILE_SMTP_URL`), or into the log when none is set.

`make run` sets none, so a developer reads verification links and invitations in the
API's log; tests point it at a local SMTP server and read what arrived. Mail goes out
only once the transaction that decided to send it commits.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from sqlmodel import Session

from services.core.db import on_commit
from services.core.settings import get_settings

logger = logging.getLogger("lastmile.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class MailError(Exception):
    """The mail could not be handed to the SMTP server."""


def send(mail: Mail) -> None:
    """Hand one mail to the configured SMTP server now (or log it)."""
    settings = get_settings()
    if not settings.smtp_url:
        logger.warning("mail to %s: %s\n%s", mail.to, mail.subject, mail.text)
        return
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message.set_content(mail.text)
    url = urlsplit(settings.smtp_url)
    try:
        smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        with smtp_class(url.hostname or "127.0.0.1", url.port or 25, timeout=10) as smtp:
            if url.scheme == "smtp+starttls":
                smtp.starttls()
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise MailError(f"could not send mail to {mail.to}: {error}") from error


def send_after_commit(session: Session, mail: Mail) -> None:
    """Send once the session's transaction commits; a failure is logged, never raised
    into a request that already succeeded (the person can ask for the mail again)."""

    def deliver() -> None:
        try:
            send(mail)
        except MailError:
            logger.exception("mail lost")

    on_commit(session, deliver)
