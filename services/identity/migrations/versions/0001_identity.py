"""Organisations, users and pending logins.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None

APP_ROLE = "tollgate_identity"


def upgrade() -> None:
    """Create the identity schema's tables and the app role's privileges."""
    op.execute(
        """
        CREATE TABLE organisations (
            id uuid PRIMARY KEY,
            name text NOT NULL,
            slug text NOT NULL UNIQUE,
            -- The company domain; NULL for a personal organisation.
            domain text UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE users (
            id uuid PRIMARY KEY,
            issuer text NOT NULL,
            subject text NOT NULL,
            email text NOT NULL,
            name text NOT NULL,
            role text NOT NULL CHECK (role IN ('admin', 'member')),
            organisation_id uuid NOT NULL REFERENCES organisations (id),
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (issuer, subject)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE login_attempts (
            state_hash text PRIMARY KEY,
            browser_hash text NOT NULL,
            nonce text NOT NULL,
            code_verifier text NOT NULL,
            expires_at timestamptz NOT NULL
        )
        """
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON organisations, users TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, DELETE ON login_attempts TO {APP_ROLE}")
