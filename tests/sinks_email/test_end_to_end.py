"""The e-mail sink run by the real runtime: stream → streaming query → sink → aiosmtpd (STARTTLS + AUTH)."""

from __future__ import annotations

from sinkflow.runtime.manager import SinkDefinition
from sinkflow.runtime.status import SinkState
from sinkflow.streams.store import StreamSettings
from sinkflow.streams.types import Column, parse_type
from tests.runtime.conftest import runtime  # noqa: F401 - the runtime fixture over real parts
from tests.runtime.support import Runtime, eventually
from tests.servers.smtp import SmtpServer


def make_readings(rt: Runtime) -> None:
    rt.store.create("readings", [Column("device", parse_type("string")), Column("temperature", parse_type("float64"))],
                    StreamSettings())


def definition(server: SmtpServer, password: str) -> SinkDefinition:
    return SinkDefinition(
        name="overheat_mail", type="email",
        sql="select device, temperature from readings where temperature > 80",
        properties={
            "host": server.host, "port": server.port, "tls": "starttls", "tls_skip_verify": True,
            "username": "alerts", "password": password, "from": "alerts@example.org", "to": "oncall@example.org",
            "subject": "{{.device}} is overheating", "body": "{{.device}} reached {{.temperature}} °C",
        },
    )


async def test_one_mail_per_result_row(runtime: Runtime, smtp: SmtpServer) -> None:  # noqa: F811
    make_readings(runtime)
    record = await runtime.sinks.create(definition(smtp, "s3cret-pw"))
    runtime.store.get("readings").append_rows(["device", "temperature"], [["d1", 70.0], ["d2", 85.5], ["d3", 91.0]])
    await eventually(lambda: len(smtp.messages) == 2, what="2 e-mails")
    assert [(m.message["Subject"], m.message.get_content().rstrip()) for m in smtp.messages] == [
        ("d2 is overheating", "d2 reached 85.5 °C"),
        ("d3 is overheating", "d3 reached 91 °C"),
    ]
    assert all(m.rcpt_tos == ["oncall@example.org"] and m.login == "alerts" for m in smtp.messages)
    await eventually(lambda: runtime.sinks.status(record.id).rows_delivered == 2, what="2 delivered rows")


async def test_wrong_password_fails_the_sink_with_a_clear_reason(runtime: Runtime, smtp: SmtpServer) -> None:  # noqa: F811
    make_readings(runtime)
    record = await runtime.sinks.create(definition(smtp, "wrong-password"))
    status = runtime.sinks.status(record.id)
    await eventually(lambda: status.state is SinkState.FAILED, what="the sink to fail")
    assert "refused the login of user 'alerts'" in status.reason and "535" in status.reason
    assert "wrong-password" not in status.reason and "wrong-password" not in status.last_error
