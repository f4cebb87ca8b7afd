"""Who may call the REST surface: a `run` token is always required there, whatever the gateway's
`authentication` setting (the Cloudflare API always authenticates), with the API's own codes:
401 / 10000 for a missing, invalid or foreign token, 403 / 10001 for one without `run` here."""

from __future__ import annotations

from app.auth.principals import TokenLookup, identify
from app.auth.tokens import bearer_value
from app.core.errors import Unauthorized
from app.core.rest_errors import AuthenticationFailed, NotPermitted


def rest_token(
    cf_aig_authorization: str | None, authorization: str | None, x_api_key: str | None
) -> str | None:
    """The token, from the first place that has one: `cf-aig-authorization`, `Authorization`
    (`Bearer …`), then `x-api-key` (where the Anthropic SDK puts its key)."""
    for raw in (cf_aig_authorization, authorization, x_api_key):
        value = bearer_value(raw)
        if value is not None:
            return value
    return None


async def check_rest_token(
    lookup: TokenLookup, admin_token: str | None, token: str | None, account_id: str, gateway_id: str
) -> None:
    try:
        principal = await identify(lookup, admin_token, token)
    except Unauthorized:
        raise AuthenticationFailed() from None
    if not principal.is_admin and principal.account_id != account_id:
        raise AuthenticationFailed()  # another account's token is no token here
    if not principal.can("run", account_id, gateway_id):
        raise NotPermitted()
