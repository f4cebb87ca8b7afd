"""Errors only the REST surface (`/client/v4/accounts/{acct}/ai/…`) answers, with the Cloudflare
API's codes. They are gateway errors like the others and reach the client in the v4 envelope
(`app/transports/rest_encode.py`)."""

from __future__ import annotations

from app.core.errors import GatewayError


class AuthenticationFailed(GatewayError):
    """No token, or one that is invalid, expired, revoked or of another account."""

    code, status, default_message = 10000, 401, "Authentication error"


class NotPermitted(GatewayError):
    """A valid token of this account without `run` for this gateway."""

    code, status, default_message = 10001, 403, "Unauthorized to access requested resource"


class ModelNotFound(GatewayError):
    code, status, default_message = 7003, 404, "Model not found"


class ProviderCredentialRejected(GatewayError):
    """The provider refused the credential (its 401 or 403). Only the REST surface says so; the
    legacy surface relays the provider's own answer."""

    code, status, default_message = 2009, 401, "The provider rejected the credential"


class MissingProviderCredential(GatewayError):
    """No `cf-aig-provider-key` and no stored key for the provider of the call."""

    code, status, default_message = 2042, 400, "No provider credential for this request"
