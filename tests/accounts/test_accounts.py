"""Sign-up, verification, sign-in throttling, invitations and roles (the domain alone)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.accounts import passwords, roles, team, throttle, users
from services.accounts.roles import Capability, Role
from services.core.db import utcnow
from services.core.errors import UserErrors

FORM = users.SignUp(company="Acme", name="Ada", email="Ada@Example.com", password="a long password")


def test_sign_up_creates_the_merchant_and_its_unverified_owner(session, mailbox):
    tenant, user = users.sign_up(session, FORM, utcnow())
    session.commit()
    assert user.email == "ada@example.com" and user.email_verified_at is None
    assert users.membership_of(session, user.id).role == Role.OWNER
    assert users.membership_of(session, user.id).tenant_id == tenant.id
    link = mailbox.last_link("ada@example.com")
    assert "/verify-email?token=" in link


def test_passwords_are_argon2_hashes(session):
    _, user = users.sign_up(session, FORM, utcnow())
    assert user.password_hash.startswith("$argon2id$")
    assert passwords.verify_password(user.password_hash, "a long password")
    assert not passwords.verify_password(user.password_hash, "a long passworD")


@pytest.mark.parametrize(
    "change, field",
    [({"email": "not-an-address"}, "email"), ({"password": "short"}, "password"),
     ({"company": " "}, "company"), ({"name": ""}, "name")],
)  # fmt: skip
def test_sign_up_refuses_bad_input(session, change, field):
    form = users.SignUp(**{**vars(FORM), **change})
    with pytest.raises(UserErrors) as refused:
        users.sign_up(session, form, utcnow())
    assert [e.field[-1] for e in refused.value.errors] == [field]


def test_an_address_signs_up_once(session):
    users.sign_up(session, FORM, utcnow())
    session.flush()
    with pytest.raises(UserErrors):
        users.sign_up(
            session, users.SignUp("Other", "Bob", "ada@EXAMPLE.com", "another password"), utcnow()
        )


def test_sign_in_needs_a_verified_address(session, mailbox):
    now = utcnow()
    _, user = users.sign_up(session, FORM, now)
    with pytest.raises(users.SignInRefused, match="Verify"):
        users.authenticate(session, "ada@example.com", "a long password", "10.0.0.1", now)
    session.commit()  # the mail leaves once the sign-up commits
    token = mailbox.last_link("ada@example.com").split("token=")[1]
    assert users.verify_email(session, token, now) == user
    assert (
        users.authenticate(session, "ADA@example.com", "a long password", "10.0.0.1", now) == user
    )


def test_a_verification_link_expires(session, mailbox):
    now = utcnow()
    users.sign_up(session, FORM, now)
    session.commit()
    token = mailbox.last_link("ada@example.com").split("token=")[1]
    assert users.verify_email(session, token, now + timedelta(days=3)) is None
    assert users.verify_email(session, "made-up", now) is None


def _verified(session):
    now = utcnow()
    _, user = users.sign_up(session, FORM, now)
    user.email_verified_at = now
    session.add(user)
    session.flush()
    return user


def test_an_account_is_throttled_after_repeated_failures(session):
    _verified(session)
    now = utcnow()
    for attempt in range(throttle.ACCOUNT_LIMIT):
        with pytest.raises(users.SignInRefused, match="wrong"):
            users.authenticate(session, "ada@example.com", "guess", f"10.0.0.{attempt}", now)
    with pytest.raises(users.SignInRefused, match="Too many"):  # even with the right password
        users.authenticate(session, "ada@example.com", "a long password", "10.9.9.9", now)
    later = now + throttle.WINDOW + timedelta(seconds=1)
    assert users.authenticate(session, "ada@example.com", "a long password", "10.9.9.9", later)


def test_an_address_is_throttled_across_accounts(session):
    now = utcnow()
    for attempt in range(throttle.ADDRESS_LIMIT):
        with pytest.raises(users.SignInRefused, match="wrong"):
            users.authenticate(session, f"nobody{attempt}@example.com", "guess", "10.1.1.1", now)
    _verified(session)
    with pytest.raises(users.SignInRefused, match="Too many"):
        users.authenticate(session, "ada@example.com", "a long password", "10.1.1.1", now)
    assert users.authenticate(session, "ada@example.com", "a long password", "10.1.1.2", now)


def test_an_invitation_adds_a_member_with_its_role(session, mailbox):
    owner = _verified(session)
    tenant_id = users.membership_of(session, owner.id).tenant_id
    invitation = team.invite(session, tenant_id, owner, "bob@example.com", "viewer", utcnow())
    session.commit()
    token = mailbox.last_link("bob@example.com").rsplit("/", 1)[1]
    bob = team.accept(session, token, "Bob", "bob's long password", utcnow())
    assert users.membership_of(session, bob.id).role == "viewer"
    assert bob.email_verified_at is not None
    assert team.open_invitation(session, token, utcnow()) is None  # used once
    assert invitation.accepted_at is not None


def test_the_last_owner_stays(session):
    owner = _verified(session)
    membership = users.membership_of(session, owner.id)
    with pytest.raises(UserErrors, match="owner"):
        team.change_role(session, membership.tenant_id, membership.id, "viewer")
    with pytest.raises(UserErrors, match="owner"):
        team.remove(session, membership.tenant_id, membership.id)


def test_roles_limit_capabilities_and_scopes():
    assert not roles.allows(Role.VIEWER, Capability.MANAGE_DELIVERIES)
    assert not roles.allows(Role.DEVELOPER, Capability.VIEW_BILLING)
    assert "billing:read" not in roles.scopes_for(Role.DEVELOPER)
    assert "deliveries:write" not in roles.scopes_for(Role.VIEWER)
    assert roles.scopes_for(Role.OWNER) == {"deliveries:read", "deliveries:write", "billing:read"}
