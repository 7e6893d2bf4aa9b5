"""Console sign-in through the organisation's OpenID Connect provider (``HUB_OIDC_ISSUER``, docs/console.md).

authlib's Starlette client runs the authorization-code flow: PKCE (S256), a ``state`` kept in a short-lived signed
cookie of this browser (``hub_console_oidc``, ``SameSite=Lax`` so that it comes back on the provider's redirect,
path ``/console/oidc``), a ``nonce`` that the id_token must carry, and the id_token's signature (the provider's
JWKS), issuer, audience and expiry checked. This module only turns a callback into the verified claims, or a
refusal with a reason; which officer the claims name is the console's (``hub.console.web``).
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from dataclasses import dataclass
from typing import Any

# authlib 1.9 warns on importing its httpx integration, which is what we use; a CLI's stderr is no place for it.
# authlib.deprecate puts an "always" filter first when imported, so it is imported before ours goes in front.
import authlib.deprecate  # noqa: F401
import httpx
from authlib.common.errors import AuthlibBaseError
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from hub.settings import Settings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "The httpx module is deprecated")
    from authlib.integrations.starlette_client import OAuth

STATE_COOKIE = "hub_console_oidc"
STATE_PATH = "/console/oidc"
STATE_TTL = 600  # seconds between leaving for the provider and coming back


@dataclass(frozen=True)
class OidcRefusal(Exception):
    reason: str  # OIDC_BAD_STATE | OIDC_BAD_ID_TOKEN | OIDC_PROVIDER_ERROR | OIDC_NO_ID_TOKEN
    detail: str


def state_secret(console_key: bytes) -> str:
    """The key that signs the state cookie, derived from the console's session key (not the same key)."""
    return hmac.new(console_key, b"hub-console-oidc-state", hashlib.sha256).hexdigest()


class OidcLogin:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.oauth = OAuth()
        self.oauth.register(
            "hub",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": "openid profile", "code_challenge_method": "S256", "timeout": 10.0},
        )
        client = self.oauth.create_client("hub")
        assert client is not None
        self.client: Any = client

    def redirect_uri(self, request: Request) -> str:
        return self.settings.oidc_redirect_url or f"{request.url.scheme}://{request.url.netloc}/console/oidc/callback"

    async def start(self, request: Request) -> Response:
        """The redirect to the provider's authorization endpoint (state, nonce and PKCE verifier kept)."""
        response: Response = await self.client.authorize_redirect(request, self.redirect_uri(request))
        return response

    async def finish(self, request: Request) -> dict[str, Any]:
        """The verified id_token claims of the callback, or ``OidcRefusal``."""
        if request.query_params.get("error"):
            raise OidcRefusal("OIDC_PROVIDER_ERROR", request.query_params["error"][:200])
        state = request.query_params.get("state", "")
        if not state or f"_state_hub_{state}" not in request.session:
            request.session.clear()
            raise OidcRefusal("OIDC_BAD_STATE", "the state does not belong to a sign-in started in this browser")
        try:
            metadata = await self.client.load_server_metadata()
            # authlib checks the audience only through "azp" (a token for another client that names this one as
            # authorized party would pass): the audience must contain this client, and the issuer be the provider
            checks = {
                "iss": {"essential": True, "values": [metadata.get("issuer") or self.settings.oidc_issuer]},
                "aud": {"essential": True, "value": self.settings.oidc_client_id},
            }
            token = await self.client.authorize_access_token(request, claims_options=checks)
        except JoseError as e:
            raise OidcRefusal("OIDC_BAD_ID_TOKEN", f"{type(e).__name__}: {e}"[:300]) from None
        except (AuthlibBaseError, httpx.HTTPError, ValueError, KeyError) as e:
            raise OidcRefusal("OIDC_PROVIDER_ERROR", f"{type(e).__name__}: {e}"[:300]) from None
        finally:
            request.session.clear()
        userinfo = token.get("userinfo")
        if not userinfo:
            raise OidcRefusal("OIDC_NO_ID_TOKEN", "the provider's answer has no id_token")
        return dict(userinfo)
