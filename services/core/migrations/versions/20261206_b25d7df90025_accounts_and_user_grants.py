"""accounts and user grants: the dashboard's people and the OAuth server's user grants

Users, their membership of a merchant with a role, invitations, e-mail verification,
sign-in attempts (throttling) and browser sessions; each merchant's settings; and for
the authorization code and refresh token grants, codes, refresh tokens and revoked
access tokens. API clients learn redirect URIs, grant types, public and first-party
apps, and secret rotation with an overlap.

Row-level security as d8f1b3a5c7e9 has it: every new table admits the platform's role;
people, sessions, codes and tokens are the authorization server's (the platform's) alone;
a merchant's transaction reads and writes its own settings.

Revision ID: b25d7df90025
Revises: f4b2d8e6a1c3
Create Date: 2026-12-06 03:38:40.637184
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.core.db

revision: str = 'b25d7df90025'
down_revision: str | None = 'f4b2d8e6a1c3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MERCHANT = 'lastmile_app'
PLATFORM = 'lastmile_platform'
_MINE = "tenant_id = (SELECT nullif(current_setting('lastmile.tenant_id', true), ''))"
MERCHANT_POLICIES = {'merchant_settings': _MINE}
PLATFORM_ONLY = (
    'user_account', 'membership', 'invitation', 'email_verification', 'login_attempt',
    'web_session', 'oauth_authorization_code', 'oauth_refresh_token',
    'oauth_revoked_access_token',
)


def upgrade() -> None:
    op.create_table('login_attempt',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempt_address_at', ['address', 'at'], unique=False)
        batch_op.create_index('ix_login_attempt_email_at', ['email', 'at'], unique=False)

    op.create_table('oauth_revoked_access_token',
    sa.Column('jti', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('expires_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti')
    )
    with op.batch_alter_table('oauth_revoked_access_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_revoked_access_token_expires_at'), ['expires_at'], unique=False)

    op.create_table('user_account',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('email_verified_at', services.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_account_email'), ['email'], unique=True)

    op.create_table('email_verification',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', services.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('email_verification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_verification_user_id'), ['user_id'], unique=False)

    op.create_table('invitation',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('invited_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', services.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', services.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invited_by'], ['user_account.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitation_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('membership',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'user_id', name='uq_membership_user')
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_user_id'), ['user_id'], unique=False)

    op.create_table('merchant_settings',
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('legal_name', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('support_email', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('support_phone', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('default_service_area', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('notifications', sa.JSON(), nullable=False),
    sa.Column('updated_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('tenant_id')
    )
    op.create_table('oauth_authorization_code',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('redirect_uri', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('code_challenge', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('code_challenge_method', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sandbox', sa.Boolean(), nullable=False),
    sa.Column('created_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', services.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code_hash')
    )
    with op.batch_alter_table('oauth_authorization_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_authorization_code_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('oauth_refresh_token',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('family_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sandbox', sa.Boolean(), nullable=False),
    sa.Column('access_jti', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('access_expires_at', services.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', services.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', services.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('oauth_refresh_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_refresh_token_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_refresh_token_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_refresh_token_user_id'), ['user_id'], unique=False)

    op.create_table('web_session',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', services.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sealed_tokens', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('oauth_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_secret_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_expires_at', services.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', services.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('grant_types', sa.JSON(), nullable=False,
                                      server_default='["client_credentials"]'))
        batch_op.add_column(sa.Column('redirect_uris', sa.JSON(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('public', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('first_party', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))

    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in (*MERCHANT_POLICIES, *PLATFORM_ONLY):
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {MERCHANT}, {PLATFORM}')
        op.execute(f'ALTER TABLE {table} ENABLE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY platform ON {table} TO {PLATFORM} USING (true) WITH CHECK (true)'
        )
    for table, condition in MERCHANT_POLICIES.items():
        op.execute(
            f'CREATE POLICY merchant ON {table} TO {MERCHANT} '
            f'USING ({condition}) WITH CHECK ({condition})'
        )


def downgrade() -> None:
    with op.batch_alter_table('oauth_client', schema=None) as batch_op:
        batch_op.drop_column('first_party')
        batch_op.drop_column('public')
        batch_op.drop_column('redirect_uris')
        batch_op.drop_column('grant_types')
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('previous_secret_expires_at')
        batch_op.drop_column('previous_secret_hash')

    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_user_id'))

    op.drop_table('web_session')
    with op.batch_alter_table('oauth_refresh_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_refresh_token_user_id'))
        batch_op.drop_index(batch_op.f('ix_oauth_refresh_token_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_oauth_refresh_token_family_id'))

    op.drop_table('oauth_refresh_token')
    with op.batch_alter_table('oauth_authorization_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_authorization_code_tenant_id'))

    op.drop_table('oauth_authorization_code')
    op.drop_table('merchant_settings')
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_user_id'))
        batch_op.drop_index(batch_op.f('ix_membership_tenant_id'))

    op.drop_table('membership')
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitation_tenant_id'))

    op.drop_table('invitation')
    with op.batch_alter_table('email_verification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_verification_user_id'))

    op.drop_table('email_verification')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_account_email'))

    op.drop_table('user_account')
    with op.batch_alter_table('oauth_revoked_access_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_revoked_access_token_expires_at'))

    op.drop_table('oauth_revoked_access_token')
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempt_email_at')
        batch_op.drop_index('ix_login_attempt_address_at')

    op.drop_table('login_attempt')
