"""The identity service's settings."""

from pathlib import Path

from tollgate_common.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    """Everything the identity process is configured with (``TOLLGATE_*``)."""

    grpc_listen: str = "127.0.0.1:50051"
    database_url: str = "postgresql+asyncpg://tollgate_identity@127.0.0.1:5432/tollgate"
    oidc_issuer: str = "https://accounts.google.com"
    oidc_client_id: str = "tollgate-dev"
    oidc_client_secret: str = "tollgate-dev-secret"
    oidc_redirect_uri: str = "http://localhost:8000/auth/callback"
    # Where the ES256 signing keys live; a development key is made here at start.
    signing_keys_dir: Path = Path(".dev/keys")
    token_lifetime_seconds: int = 3600
    login_attempt_seconds: int = 600
    # Browsers send a Secure cookie over HTTPS only; production must keep it on.
    login_cookie_secure: bool = False
    ledger_target: str = "127.0.0.1:50052"
    jobs_target: str = "127.0.0.1:50053"
