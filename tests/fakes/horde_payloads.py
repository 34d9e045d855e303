"""Realistic AI-Horde status, usage and worker payloads, made deterministically from model names."""

from __future__ import annotations

from typing import Any

from horde_model_records.text import model_name_of

Json = dict[str, Any]


def image_status(names: list[str]) -> list[Json]:
    """`/v2/status/models?type=image`: counts fall with position; numbers as upstream sends them."""
    out = []
    for i, name in enumerate(names):
        out.append(
            {
                "performance": 1.5 + i / 10,
                "queued": float(1000 - i * 10),  # upstream sends floats for queued/jobs
                "jobs": float(3 + i % 4),
                "eta": 20 + i,
                "type": "image",
                "name": name,
                "count": max(len(names) - i, 1),
            }
        )
    return out


def text_status(names: list[str]) -> list[Json]:
    """`/v2/status/models?type=text`: names as workers advertise them, backend-prefixed."""
    out = []
    for i, name in enumerate(names):
        out.append(
            {
                "performance": 10.0 + i,
                "queued": 50.0,
                "jobs": 1.0,
                "eta": 5,
                "type": "text",
                "name": f"koboldcpp/{model_name_of(name)}",
                "count": 2 + i,
            }
        )
        out.append(
            {
                "performance": "12.5",  # strings happen too
                "queued": 10,
                "jobs": 0,
                "eta": 1,
                "type": "text",
                "name": f"aphrodite/{name}",
                "count": 1,
            }
        )
    return out


def usage(names: list[str], scale: int = 1) -> Json:
    """`/v2/stats/*/models`: day, month and total counts; the first model is the most used."""
    n = len(names)
    return {
        "day": {name: (n - i) * 10 * scale for i, name in enumerate(names)},
        "month": {name: (n - i) * 300 * scale for i, name in enumerate(names)},
        "total": {name: (n - i) * 100_000 * scale for i, name in enumerate(names)},
    }


def workers(
    image_names: list[str], text_names: list[str], count: int = 100
) -> tuple[list[Json], list[Json]]:
    """(image workers, text workers): `count` workers in all, each serving a few models."""
    image, text = [], []
    for i in range(count):
        is_text = i % 4 == 3 and text_names
        pool = text_names if is_text else image_names
        served = [pool[(i + k) % len(pool)] for k in range(1 + i % 3)] if pool else []
        if is_text:
            served = [f"koboldcpp/{model_name_of(n)}" for n in served]
        worker = {
            "name": f"worker-{i}",
            "id": f"{i:08d}-0000-4000-8000-000000000000",
            "type": "text" if is_text else "image",
            "performance": f"{1 + i % 5}.0 megapixelsteps per second",
            "requests_fulfilled": i * 7,
            "kudos_rewards": float(i),
            "kudos_details": {"generated": float(i), "uptime": 1.0},
            "threads": 1,
            "uptime": 3600 + i,
            "uncompleted_jobs": 0,
            "maintenance_mode": False,
            "nsfw": True,
            "trusted": i % 2 == 0,
            "flagged": False,
            "online": True,
            "models": served,
            "team": {"name": None, "id": None},
            "bridge_agent": "AI Horde Worker reGen:9.0.0:https://example.com",
        }
        (text if is_text else image).append(worker)
    return image, text
