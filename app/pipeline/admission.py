"""Who may use a gateway: its config, and the `run` token it asks for (2001, 2009)."""

from __future__ import annotations

from app.auth.principals import require
from app.core.errors import GatewayNotFound, Unauthorized
from app.pipeline.collaborators import GatewaySource
from app.pipeline.types import GatewayRequest
from app.services.config import GatewayConfig

# A 2009 says which header carries the gateway token: a token sent as `Authorization` goes to the
# provider, and a bare "Unauthorized" left newcomers guessing.
_HTTP_TOKEN_HINT = "send a gateway token with the run permission as `cf-aig-authorization: Bearer <token>`"
_SESSION_TOKEN_HINT = (
    "WebSocket sessions always need a gateway token, even when the gateway's authentication is off: "
    "send `cf-aig-authorization: Bearer <token>`, or (browsers) the subprotocol "
    "`cf-aig-authorization.<token>`"
)


def _refusal(token: str | None, hint: str) -> Unauthorized:
    why = "no gateway token" if not token else "the gateway token is not valid for this gateway"
    return Unauthorized(f"Unauthorized: {why}; {hint}")


class Admission:
    def __init__(self, gateways: GatewaySource, admin_token: str | None) -> None:
        self._gateways = gateways
        self._admin_token = admin_token

    async def admit(self, request: GatewayRequest) -> tuple[GatewayConfig, bool]:
        """The gateway's config and whether the request was authenticated (2001 / 2009)."""
        account, gateway_id = request.account_id, request.gateway_id
        token = request.options.authorization
        gateway = await self._gateways.gateway(account, gateway_id)
        if gateway is None:
            if gateway_id != "default":
                raise GatewayNotFound()
            await self._check_token(token, account, gateway_id, _HTTP_TOKEN_HINT)
            return await self._gateways.ensure_default_gateway(account), True
        if gateway.authentication:
            await self._check_token(token, account, gateway_id, _HTTP_TOKEN_HINT)
            return gateway, True
        return gateway, request.authenticated

    async def open_session(self, account_id: str, gateway_id: str, token: str | None) -> GatewayConfig:
        """Admission of a WebSocket session: a valid `run` token is required whatever the gateway's
        `authentication` setting (protocol.md §5)."""
        await self._check_token(token, account_id, gateway_id, _SESSION_TOKEN_HINT)
        gateway = await self._gateways.gateway(account_id, gateway_id)
        if gateway is None:
            if gateway_id != "default":
                raise GatewayNotFound()
            gateway = await self._gateways.ensure_default_gateway(account_id)
        return gateway

    async def _check_token(self, token: str | None, account: str, gateway_id: str, hint: str) -> None:
        try:
            await require(self._gateways, self._admin_token, token, "run", account, gateway_id)
        except Unauthorized:
            raise _refusal(token, hint) from None
