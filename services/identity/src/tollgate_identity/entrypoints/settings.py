"""The identity service's settings."""

from pathlib import Path

from pydantic import Field, SecretStr

from tollgate_common.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    """Everything the identity process is configured with (``TOLLGATE_*``)."""

    grpc_listen: str = "127.0.0.1:50051"
    database_url: str = "postgresql+asyncpg://tollgate_identity@127.0.0.1:5432/tollgate"
    # Logins look users up across organisations, as a role row-level security exempts.
    system_database_url: str = (
        "postgresql+asyncpg://tollgate_identity_system@127.0.0.1:5432/tollgate"
    )
    oidc_issuer: str = "https://accounts.google.com"
    oidc_client_id: str = "tollgate-dev"
    oidc_client_secret: SecretStr = SecretStr("tollgate-dev-secret")
    oidc_redirect_uri: str = "http://localhost:8000/auth/callback"
    # The folder of ES256 signing keys, one <kid>.pem (PKCS#8, P-256) each; names
    # sort oldest first and the newest signs. In development identity makes the
    # first key here at start (.dev/ is git-ignored). In production point this at
    # a mounted secret (a Kubernetes secret volume, shared by every replica) and
    # set TOLLGATE_SIGNING_KEYS_CREATE=false, so that a replica with an empty
    # folder stops at start instead of signing with a key its peers do not publish.
    signing_keys_dir: Path = Path(".dev/keys")
    signing_keys_create: bool = True
    # A new key is published at once but signs only once it is this old, so that
    # every replica lists it before any signs with it. With one identity, or one
    # folder that every replica reads at once, 0 will do; with a Kubernetes secret
    # make it longer than the secret takes to reach every pod (300 is safe).
    signing_key_activation_seconds: int = Field(default=0, ge=0)
    # Access-token lifetime; rotate-keys keeps a retired key this long (plus a
    # margin), so it must be the value tokens were issued with.
    token_lifetime_seconds: int = Field(default=3600, ge=1)
    # How long a started login may take; the state and its cookie last this long.
    login_attempt_seconds: int = Field(default=600, ge=1, le=3600)
    # Browsers send a Secure cookie over HTTPS only; production must keep it on.
    login_cookie_secure: bool = False
    ledger_target: str = "127.0.0.1:50052"
    jobs_target: str = "127.0.0.1:50053"
