"""Signing up, verifying an e-mail address and signing in.

Sign-up creates the merchant (a tenant) and its owner, and mails a verification link;
an account signs in only once its address is verified. Sign-in is throttled per
account and per address (`throttle`), and a refusal never tells whether the address
has an account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from services.accounts import passwords, throttle
from services.accounts.roles import Role
from services.core.errors import UserError, UserErrorCode, UserErrors
from services.core.mail import Mail, send_after_commit
from services.core.models import EmailVerification, Membership, Tenant, UserAccount
from services.core.opaque import digest, new_secret
from services.core.settings import get_settings

VERIFICATION_TTL = timedelta(days=2)
MAX_NAME_LENGTH = 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SignInRefused(Exception):
    """Sign-in failed; the message is safe to show (it never says which part was wrong)."""

    def __init__(self, message: str, unverified_user: UserAccount | None = None) -> None:
        super().__init__(message)
        self.unverified_user = unverified_user


@dataclass(frozen=True)
class SignUp:
    company: str
    name: str
    email: str
    password: str


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str, field: tuple[str, ...], errors: list[UserError]) -> None:
    if not _EMAIL.match(email) or len(email) > 254:
        errors.append(UserError(field, "Enter an e-mail address.", UserErrorCode.INVALID))


def check_name(value: str, field: tuple[str, ...], errors: list[UserError], what: str) -> None:
    if not value.strip():
        errors.append(UserError(field, f"Enter {what}.", UserErrorCode.REQUIRED))
    elif len(value) > MAX_NAME_LENGTH:
        errors.append(
            UserError(field, f"At most {MAX_NAME_LENGTH} characters.", UserErrorCode.TOO_LONG)
        )


def check_new_password(password: str, errors: list[UserError]) -> None:
    if (problem := passwords.problem(password)) is not None:
        errors.append(UserError(("password",), problem, UserErrorCode.INVALID))


def sign_up(session: Session, form: SignUp, now: datetime) -> tuple[Tenant, UserAccount]:
    """The new merchant and its owner (unverified), with a verification mail on its way."""
    email = normalize_email(form.email)
    errors: list[UserError] = []
    check_name(form.company, ("company",), errors, "your company's name")
    check_name(form.name, ("name",), errors, "your name")
    check_email(email, ("email",), errors)
    check_new_password(form.password, errors)
    if not errors and find_by_email(session, email) is not None:
        errors.append(
            UserError(
                ("email",),
                "An account with this address exists: sign in instead.",
                UserErrorCode.INVALID,
            )
        )
    if errors:
        raise UserErrors(errors)
    tenant = Tenant(name=form.company.strip(), created_at=now)
    user = UserAccount(
        email=email,
        name=form.name.strip(),
        password_hash=passwords.hash_password(form.password),
        created_at=now,
    )
    session.add(tenant)
    session.add(user)
    session.flush()
    session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=Role.OWNER, created_at=now))
    send_verification(session, user, now)
    return tenant, user


def send_verification(session: Session, user: UserAccount, now: datetime) -> None:
    """Mail a fresh verification link (earlier links keep working until they expire)."""
    token = new_secret()
    session.add(
        EmailVerification(
            user_id=user.id,
            token_hash=digest(token),
            created_at=now,
            expires_at=now + VERIFICATION_TTL,
        )
    )
    link = f"{get_settings().issuer}/verify-email?token={token}"
    send_after_commit(
        session,
        Mail(
            to=user.email,
            subject="Verify your e-mail address for Lastmile",
            text=f"Hello {user.name},\n\nConfirm this is your address by opening:\n\n{link}\n\n"
            f"The link works for {VERIFICATION_TTL.days} days. If you did not sign up for "
            "Lastmile, ignore this mail.\n",
        ),
    )


def verify_email(session: Session, token: str, now: datetime) -> UserAccount | None:
    """The user whose address the link verifies, or None for an unknown or expired link."""
    row = session.exec(
        select(EmailVerification).where(EmailVerification.token_hash == digest(token))
    ).first()
    if row is None or row.expires_at <= now:
        return None
    user = session.get(UserAccount, row.user_id)
    if user is None:
        return None
    row.used_at = row.used_at or now
    user.email_verified_at = user.email_verified_at or now
    session.add(row)
    session.add(user)
    return user


def authenticate(
    session: Session, email: str, password: str, address: str, now: datetime
) -> UserAccount:
    """The user these credentials prove, or SignInRefused; every attempt is recorded."""
    email = normalize_email(email)
    wait = throttle.retry_after(session, email, address, now)
    if wait is not None:
        minutes = max(1, int(wait.total_seconds() + 59) // 60)
        raise SignInRefused(
            f"Too many failed attempts. Try again in {minutes} minute{'s' * (minutes > 1)}."
        )
    user = find_by_email(session, email)
    if user is None:
        passwords.burn_time(password)
        ok = False
    else:
        ok = passwords.verify_password(user.password_hash, password)
    throttle.record(session, email, address, now, ok)
    if not ok or user is None:
        raise SignInRefused("The e-mail address or the password is wrong.")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        session.add(user)
    if user.email_verified_at is None:
        raise SignInRefused(
            "Verify your e-mail address first: open the link we sent you.", unverified_user=user
        )
    return user


def get(session: Session, user_id: str) -> UserAccount | None:
    return session.get(UserAccount, user_id)


def find_by_email(session: Session, email: str) -> UserAccount | None:
    return session.exec(
        select(UserAccount).where(UserAccount.email == normalize_email(email))
    ).first()


def membership_of(session: Session, user_id: str) -> Membership | None:
    """The user's membership (a user belongs to one merchant)."""
    return session.exec(
        select(Membership).where(Membership.user_id == user_id).order_by(col(Membership.created_at))
    ).first()


def change_password(session: Session, user: UserAccount, current: str, new: str) -> None:
    errors: list[UserError] = []
    if not passwords.verify_password(user.password_hash, current):
        errors.append(
            UserError(("current",), "The current password is wrong.", UserErrorCode.INVALID)
        )
    check_new_password(new, errors)
    if errors:
        raise UserErrors(errors)
    user.password_hash = passwords.hash_password(new)
    session.add(user)


def provision(
    session: Session, tenant_id: str, email: str, name: str, role: str, password: str, now: datetime
) -> UserAccount:
    """A verified member with this password, created or reset (the demo's people)."""
    user = find_by_email(session, email)
    if user is None:
        user = UserAccount(
            email=normalize_email(email), name=name, password_hash="", created_at=now
        )
        session.add(user)
        session.flush()
        session.add(Membership(tenant_id=tenant_id, user_id=user.id, role=role, created_at=now))
    user.password_hash = passwords.hash_password(password)
    user.email_verified_at = user.email_verified_at or now
    session.add(user)
    return user
