"""A merchant's team: members and their roles, and invitations by e-mail.

An owner or admin invites an address with a role; the invitee opens the link, chooses
a name and password, and joins (their address is verified by the link itself). The
last owner can neither leave nor lose the role.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from services.accounts import passwords
from services.accounts.roles import Role
from services.accounts.users import (
    check_email,
    check_name,
    check_new_password,
    find_by_email,
    normalize_email,
)
from services.core.errors import UserError, UserErrorCode, UserErrors
from services.core.mail import Mail, send_after_commit
from services.core.models import Invitation, Membership, Tenant, UserAccount
from services.core.opaque import digest, new_secret
from services.core.settings import get_settings

INVITATION_TTL = timedelta(days=7)


def members(session: Session, tenant_id: str) -> list[tuple[Membership, UserAccount]]:
    rows = session.exec(
        select(Membership, UserAccount)
        .join(UserAccount, col(UserAccount.id) == col(Membership.user_id))
        .where(Membership.tenant_id == tenant_id)
        .order_by(col(Membership.created_at))
    ).all()
    return [(membership, user) for membership, user in rows]


def pending_invitations(session: Session, tenant_id: str, now: datetime) -> list[Invitation]:
    return list(
        session.exec(
            select(Invitation)
            .where(
                Invitation.tenant_id == tenant_id,
                col(Invitation.accepted_at).is_(None),
                col(Invitation.revoked_at).is_(None),
                Invitation.expires_at > now,
            )
            .order_by(col(Invitation.created_at))
        ).all()
    )


def invite(
    session: Session, tenant_id: str, inviter: UserAccount, email: str, role: str, now: datetime
) -> Invitation:
    """Mail an invitation to join the merchant with `role`."""
    email = normalize_email(email)
    errors: list[UserError] = []
    check_email(email, ("email",), errors)
    if role not in set(Role):
        errors.append(UserError(("role",), "Choose a role.", UserErrorCode.INVALID))
    if not errors and find_by_email(session, email) is not None:
        errors.append(
            UserError(("email",), "This address already has an account.", UserErrorCode.INVALID)
        )
    if errors:
        raise UserErrors(errors)
    token = new_secret()
    invitation = Invitation(
        tenant_id=tenant_id,
        email=email,
        role=role,
        token_hash=digest(token),
        invited_by=inviter.id,
        created_at=now,
        expires_at=now + INVITATION_TTL,
    )
    session.add(invitation)
    tenant = session.get(Tenant, tenant_id)
    company = tenant.name if tenant else "a merchant"
    link = f"{get_settings().issuer}/invitations/{token}"
    send_after_commit(
        session,
        Mail(
            to=email,
            subject=f"{inviter.name} invited you to {company} on Lastmile",
            text=f"{inviter.name} ({inviter.email}) invited you to join {company} on Lastmile "
            f"as {role}.\n\nAccept by opening:\n\n{link}\n\nThe invitation is valid for "
            f"{INVITATION_TTL.days} days.\n",
        ),
    )
    return invitation


def open_invitation(session: Session, token: str, now: datetime) -> Invitation | None:
    """The invitation a link names, while it can still be accepted."""
    invitation = session.exec(
        select(Invitation).where(Invitation.token_hash == digest(token))
    ).first()
    if (
        invitation is None
        or invitation.accepted_at is not None
        or invitation.revoked_at is not None
        or invitation.expires_at <= now
    ):
        return None
    return invitation


def accept(session: Session, token: str, name: str, password: str, now: datetime) -> UserAccount:
    invitation = open_invitation(session, token, now)
    if invitation is None:
        raise UserErrors.one(
            ("token",), "This invitation has expired or was used.", UserErrorCode.NOT_FOUND
        )
    errors: list[UserError] = []
    check_name(name, ("name",), errors, "your name")
    check_new_password(password, errors)
    if find_by_email(session, invitation.email) is not None:
        errors.append(
            UserError(("email",), "This address already has an account.", UserErrorCode.INVALID)
        )
    if errors:
        raise UserErrors(errors)
    user = UserAccount(
        email=invitation.email,
        name=name.strip(),
        password_hash=passwords.hash_password(password),
        email_verified_at=now,  # the link came to this address
        created_at=now,
    )
    session.add(user)
    session.flush()
    session.add(
        Membership(
            tenant_id=invitation.tenant_id, user_id=user.id, role=invitation.role, created_at=now
        )
    )
    invitation.accepted_at = now
    session.add(invitation)
    return user


def revoke_invitation(session: Session, tenant_id: str, invitation_id: str, now: datetime) -> None:
    invitation = session.exec(
        select(Invitation).where(Invitation.id == invitation_id, Invitation.tenant_id == tenant_id)
    ).first()
    if invitation is None:
        raise UserErrors.one(("id",), "No such invitation.", UserErrorCode.NOT_FOUND)
    invitation.revoked_at = now
    session.add(invitation)


def change_role(session: Session, tenant_id: str, membership_id: str, role: str) -> Membership:
    if role not in set(Role):
        raise UserErrors.one(("role",), "Choose a role.", UserErrorCode.INVALID)
    membership = _membership(session, tenant_id, membership_id)
    if membership.role == Role.OWNER and role != Role.OWNER:
        _keep_an_owner(session, tenant_id, membership.id)
    membership.role = role
    session.add(membership)
    return membership


def remove(session: Session, tenant_id: str, membership_id: str) -> Membership:
    membership = _membership(session, tenant_id, membership_id)
    if membership.role == Role.OWNER:
        _keep_an_owner(session, tenant_id, membership.id)
    session.delete(membership)
    return membership


def _membership(session: Session, tenant_id: str, membership_id: str) -> Membership:
    membership = session.exec(
        select(Membership)
        .where(Membership.id == membership_id, Membership.tenant_id == tenant_id)
        .with_for_update()
    ).first()
    if membership is None:
        raise UserErrors.one(("id",), "No such member.", UserErrorCode.NOT_FOUND)
    return membership


def _keep_an_owner(session: Session, tenant_id: str, leaving: str) -> None:
    others = session.exec(
        select(Membership.id).where(
            Membership.tenant_id == tenant_id,
            Membership.role == Role.OWNER,
            Membership.id != leaving,
        )
    ).first()
    if others is None:
        raise UserErrors.one(
            ("role",), "A merchant keeps at least one owner.", UserErrorCode.INVALID
        )
