"""Request handlers for the test HTTP server: an OAuth2 token endpoint and a Slack webhook (the recording
API endpoint is :class:`tests.servers.http.RecordingEndpoint`)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field

from werkzeug import Request, Response

from tests.servers.http import Recorded


@dataclass
class TokenEndpoint:
    """An OAuth2 client-credentials token endpoint issuing ``tok-1``, ``tok-2``, …

    ``basic`` says whether it takes the client's credentials as HTTP Basic (else only as form fields).
    """

    client_id: str
    client_secret: str
    expires_in: int | None = 3600
    basic: bool = True
    issued: list[str] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    def __call__(self, request: Request) -> Response:
        form = dict(request.form)
        self.forms.append(form)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            ok = self.basic and (cid, secret) == (self.client_id, self.client_secret)
        else:
            ok = (form.get("client_id"), form.get("client_secret")) == (self.client_id, self.client_secret)
        if form.get("grant_type") != "client_credentials" or not ok:
            return Response(json.dumps({"error": "invalid_client"}), status=401, content_type="application/json")
        token = f"tok-{len(self.issued) + 1}"
        self.issued.append(token)
        payload: dict[str, object] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            payload["expires_in"] = self.expires_in
        return Response(json.dumps(payload), content_type="application/json")

    def check(self, rec: Recorded) -> Response | None:
        """For :attr:`RecordingEndpoint.answer`: 401 unless the request carries a valid, unrevoked token."""
        auth = rec.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or token not in self.issued or token in self.revoked:
            return Response("invalid token", status=401)
        return None


@dataclass
class SlackWebhook:
    """Speaks a Slack incoming webhook's protocol: ``{"text": …}`` JSON → ``200 ok``; bad payload →
    ``400 invalid_payload``; while ``limited`` > 0 → ``429`` with ``Retry-After``."""

    limited: int = 0
    retry_after: str = "1"
    texts: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def __call__(self, request: Request) -> Response:
        if self.limited > 0:
            self.limited -= 1
            return Response("rate_limited", status=429, headers={"Retry-After": self.retry_after})
        try:
            payload = json.loads(request.get_data())
        except ValueError:
            return Response("invalid_payload", status=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str) or not payload["text"]:
            return Response("invalid_payload", status=400)
        self.texts.append(payload["text"])
        self.times.append(time.monotonic())
        return Response("ok", status=200, content_type="text/html")
