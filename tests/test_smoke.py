"""The read service starts on the real data and answers its welcome route."""

from aiohttp.test_utils import TestClient


async def test_welcome_points_at_docs(client: TestClient) -> None:
    """GET /api/ answers 200 with a message that names /api/docs."""
    resp = await client.get("/api/")
    assert resp.status == 200
    assert "/api/docs" in (await resp.json())["message"]
