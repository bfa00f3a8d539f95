"""What the HTTP sinks' client does beside sending: TLS verification and proxies from the environment."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pytest_httpserver import HTTPServer

from sinkflow.sinks.base import PartialWriteError, RetryableError
from tests.servers.certificates import Certificate, self_signed_certificate
from tests.servers.http import RecordingEndpoint
from tests.sinks_http.conftest import serving
from tests.sinks_http.support import deliver, make_sink

ROWS = pa.record_batch({"id": pa.array([1, 2], pa.int64()), "note": ["a", "b"]})


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return self_signed_certificate(tmp_path / "tls")


@pytest.fixture
def tls_receiver(certificate: Certificate) -> Iterator[HTTPServer]:
    """An HTTPS server on 127.0.0.1 whose certificate no public CA signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    with serving(context) as server:
        yield server


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_an_untrusted_certificate_fails_the_rows_as_retryable(
    tls_receiver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = RecordingEndpoint()
    url = api.mount(tls_receiver)
    assert url.startswith("https://")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(PartialWriteError) as caught:
        await deliver(make_sink("webhook", {"url": url}, ROWS.schema), [ROWS])
    error = caught.value.failures[0]
    assert isinstance(error, RetryableError)
    assert "certificate verify failed" in error.message.lower()
    assert api.requests == []


async def test_a_certificate_trusted_through_ssl_cert_file_is_accepted(
    tls_receiver: HTTPServer, certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = RecordingEndpoint()
    url = api.mount(tls_receiver)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert_file))
    await deliver(make_sink("webhook", {"url": url}, ROWS.schema), [ROWS])
    assert api.bodies() == [{"id": 1, "note": "a"}, {"id": 2, "note": "b"}]


async def test_requests_go_through_the_proxy_named_by_http_proxy(
    receiver: HTTPServer, no_proxy_env: pytest.MonkeyPatch
) -> None:
    # The receiver plays the proxy: it gets the request for a host that does not exist.
    proxy = RecordingEndpoint()
    proxy.mount(receiver, path="/hook")
    no_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{receiver.port}")
    await deliver(make_sink("webhook", {"url": "http://hooks.sinkflow.invalid/hook"}, ROWS.schema), [ROWS])
    assert proxy.bodies() == [{"id": 1, "note": "a"}, {"id": 2, "note": "b"}]
    assert {r.headers["Host"] for r in proxy.received} == {"hooks.sinkflow.invalid"}


async def test_no_proxy_exempts_a_host(receiver: HTTPServer, no_proxy_env: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a proxy nobody listens on: using it would fail the rows
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    api = RecordingEndpoint()
    url = api.mount(receiver)
    no_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    await deliver(make_sink("webhook", {"url": url}, ROWS.schema), [ROWS])
    assert [r.json()["id"] for r in api.received] == [1, 2]
