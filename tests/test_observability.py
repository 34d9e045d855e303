"""Request ids, metrics, liveness and readiness on the services."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared.observability import AccessLogger, BufferedLineHandler, configure_logging
from tests.conftest import REQUESTOR_KEY, system_app
from tests.helpers import wait_for_status

V2 = "/api/model_references/v2"


async def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    """A request id from nginx is echoed; without one the service makes one."""
    resp = await client.get(f"{V2}/blip", headers={"X-Request-Id": "from-nginx-1"})
    assert resp.headers["X-Request-Id"] == "from-nginx-1"
    made = (await client.get(f"{V2}/blip")).headers["X-Request-Id"]
    assert made and made != "from-nginx-1"
    bad = await client.get(f"{V2}/blip", headers={"X-Request-Id": "x" * 500})
    assert len(bad.headers["X-Request-Id"]) <= 128


async def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    """/metrics counts requests by route template (never raw paths) with snapshot gauges."""
    for name in ("blip", "clip", "nope"):
        await client.get(f"{V2}/{name}")
    await client.get("/api/this/does/not/exist")
    text = await (await client.get("/metrics")).text()
    assert (
        'hmr_http_requests_total{method="GET",route="/api/model_references/v2/{category}",status="200"} 2.0'
        in text
    )
    assert 'route="/api/model_references/v2/{category}",status="422"} 1.0' in text
    assert 'route="unmatched",status="404"} 1.0' in text
    assert "/api/this/does/not/exist" not in text
    assert "hmr_read_snapshot_id 1.0" in text


async def test_probes_follow_the_snapshot(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """/livez answers at once; /readyz is 503 until a snapshot is loaded, and both /readyz and
    the log say which file the service waits for (a wrong --data-dir shows at once)."""
    with caplog.at_level(logging.WARNING):
        client = await make_client(tmp_path)
    assert (await client.get("/livez")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 503
    check = (await resp.json())["checks"]["read_snapshot"]
    pointer = str(tmp_path / "snapshots" / "CURRENT")
    assert check["ok"] is False and pointer in check["detail"]
    assert any(pointer in r.getMessage() for r in caplog.records)


async def test_system_readiness_and_queue_metrics(system: TestClient) -> None:
    """On hmr all's app readiness covers read and write; queue depth is in the metrics."""
    ready = await wait_for_status(system, "/readyz")  # once the writer's first snapshot is read
    assert set((await ready.json())["checks"]) == {"read_snapshot", "write_store"}
    body = {"name": "Metric Model", "baseline": "flux_1", "nsfw": False}
    await system.post(f"{V2}/image_generation", json=body, headers={"apikey": REQUESTOR_KEY})
    text = await (await system.get("/metrics")).text()
    assert 'hmr_queue_changes{status="pending"} 1.0' in text
    assert 'hmr_dataset_version{where="database"}' in text


def test_json_log_lines_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    """Log records are JSON lines; access records carry method, status and request id."""
    configure_logging("json")
    try:
        logging.getLogger("aiohttp.access").info(
            "GET /x 200", extra={"status": 200, "request_id": "rid-7", "method": "GET"}
        )
        logging.getLogger().handlers[0].flush()  # lines are written in batches
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["request_id"] == "rid-7" and record["status"] == 200
        assert record["level"] == "INFO" and record["logger"] == "aiohttp.access"
    finally:
        logging.getLogger().handlers[0].close()
        logging.getLogger().handlers[:] = []


async def test_a_malformed_request_is_a_400_and_one_warning_without_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A NUL in a header is answered 400 and logged as one WARNING line, not an ERROR with a
    traceback (a scanner must not fill the error log)."""
    configure_logging("json")
    server = TestServer(web.Application())  # the parser fails before any app code runs
    await server.start_server()
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        assert status_line.split()[1] == b"400"
        await asyncio.sleep(0.05)  # the server logs after answering
    finally:
        await server.close()
        logging.getLogger().handlers[0].close()
        logging.getLogger().handlers[:] = []
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    server_records = [r for r in records if r["logger"] == "aiohttp.server"]
    assert [r["level"] for r in server_records] == ["WARNING"]
    assert "Invalid header value char" in server_records[0]["message"]
    assert not any("exc_info" in r or r["level"] == "ERROR" for r in records)


async def test_replica_polling_leaves_no_access_log_lines(
    tmp_path: Path, auth_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A pulling replica's polls of the live snapshot name are not logged; other requests are,
    each on one line whatever its path holds."""
    app = system_app(tmp_path / "data", HMR_AUTH_FILE=auth_file)
    server = TestServer(app)
    await server.start_server(
        access_log_class=AccessLogger, access_log=logging.getLogger("access-test")
    )
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for_status(session, str(server.make_url("/readyz")))
            with caplog.at_level(logging.INFO, logger="access-test"):
                for _ in range(5):
                    async with session.get(server.make_url("/api/internal/snapshots/current")) as r:
                        assert r.status == 200
                async with session.get(server.make_url("/api/replicate_mode")) as r:
                    assert r.status == 200
                async with session.get(server.make_url("/api/no%0Aline")) as r:
                    assert r.status == 404
    finally:
        await server.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "access-test"]
    assert [line for line in lines if "/readyz" not in line] == [
        "GET /api/replicate_mode 200",
        "GET /api/no%0Aline 404",  # as sent: a decoded line break would forge a log line
    ]


async def test_an_access_line_has_every_field_once_as_json(
    tmp_path: Path, auth_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The access log's fast path writes the same JSON line python-json-logger would: time, level,
    logger, message, request id, method, path as sent, status, duration and remote address."""
    configure_logging("json")
    app = system_app(tmp_path / "data", HMR_AUTH_FILE=auth_file)
    server = TestServer(app)
    await server.start_server(
        access_log_class=AccessLogger, access_log=logging.getLogger("aiohttp.access")
    )
    try:
        async with aiohttp.ClientSession() as session:
            await wait_for_status(session, str(server.make_url("/readyz")))
            async with session.get(
                server.make_url("/api/no%0Aline"), headers={"X-Request-Id": "rid-access-1"}
            ) as r:
                assert r.status == 404
    finally:
        await server.close()
        logging.getLogger().handlers[0].close()  # writes what is buffered
        logging.getLogger().handlers[:] = []
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    [line] = [r for r in records if r.get("request_id") == "rid-access-1"]
    assert list(line) == [
        "time",
        "level",
        "logger",
        "message",
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
        "remote",
    ]
    assert line["logger"] == "aiohttp.access" and line["level"] == "INFO"
    assert line["message"] == "GET /api/no%0Aline 404"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/no%0Aline", 404)
    assert line["remote"] == "127.0.0.1" and line["duration_ms"] >= 0
    assert len(line["time"].split(",")[-1]) == 3  # milliseconds, as python-json-logger writes


def test_log_lines_are_written_in_batches_but_a_warning_at_once() -> None:
    """INFO lines wait in the handler's buffer (no write per line); a WARNING writes the batch
    with itself, in order; a full buffer and close() write what waits."""
    stream = io.StringIO()
    handler = BufferedLineHandler(stream, max_delay=3600, max_bytes=200)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("buffer-test")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        logger.info("one")
        logger.info("two")
        assert stream.getvalue() == ""
        logger.warning("three")
        assert stream.getvalue() == "INFO one\nINFO two\nWARNING three\n"
        logger.info("x" * 300)  # past max_bytes
        assert stream.getvalue().endswith("x" * 300 + "\n")
        logger.info("last")
        assert not stream.getvalue().endswith("last\n")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert stream.getvalue().endswith("INFO last\n")


async def test_a_buffered_line_is_written_without_further_logging() -> None:
    """An idle service does not hold its last lines: the handler's flusher writes them after
    max_delay."""
    stream = io.StringIO()
    handler = BufferedLineHandler(stream, max_delay=0.05)
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        handler.handle(logging.makeLogRecord({"msg": "idle", "levelno": logging.INFO}))
        for _ in range(200):
            if stream.getvalue():
                break
            await asyncio.sleep(0.05)
        assert stream.getvalue() == "idle\n"
    finally:
        handler.close()
