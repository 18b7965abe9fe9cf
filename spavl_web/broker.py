"""What the Celery broker still holds, so the recovery sweep can tell a lost message.

Read straight from kombu's Redis layout: each queue is a list (one per priority step), and a
message a worker has taken but not yet acknowledged sits in the ``unacked`` hash, with the time
it was taken in ``unacked_index``. A message counts as live while it waits in a queue, or while
a worker has held it for less than the job lease (a dead worker's message would otherwise count
until Redis restores it, hours later). Messages that are not a task with an id argument are
ignored. A message sent twice does no harm: every task claims its job idempotently.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import redis
from django.conf import settings

TaskKey = tuple[str, int]  # (task name, first positional argument: the job's id)
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"


def task_queues() -> list[str]:
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    return sorted(routed | {settings.CELERY_TASK_DEFAULT_QUEUE})


def live_tasks() -> set[TaskKey] | None:
    """Tasks the broker still holds for someone to run, or None without a Redis broker (the
    embedded demo runs tasks in-process and loses none)."""
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return None
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        return _queued(client) | _held(client, max_age_s=settings.JOB_LEASE_S)
    finally:
        client.close()


def _queued(client: redis.Redis) -> set[TaskKey]:
    names = [
        queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}"
        for queue in task_queues()
        for step in PRIORITY_STEPS
    ]
    return {key for name in names for raw in client.lrange(name, 0, -1) if (key := _key(raw))}


def _held(client: redis.Redis, *, max_age_s: float) -> set[TaskKey]:
    recent: list[bytes] = client.zrangebyscore(  # type: ignore[assignment]  # no withscores
        UNACKED_INDEX, time.time() - max_age_s, "+inf"
    )
    if not recent:
        return set()
    keys = set()
    for raw in client.hmget(UNACKED, recent):
        if raw is not None:
            message = _json(raw)
            if isinstance(message, list) and message and (key := _key(message[0])):
                keys.add(key)
    return keys


def _key(raw: bytes | str | dict[str, Any]) -> TaskKey | None:
    message = raw if isinstance(raw, dict) else _json(raw)
    if not isinstance(message, dict):
        return None
    task = (message.get("headers") or {}).get("task")
    body = message.get("body", "")
    if (message.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    decoded = _json(body)
    args = decoded[0] if isinstance(decoded, list) and decoded else None
    if not isinstance(task, str) or not args or not isinstance(args[0], int):
        return None
    return task, args[0]


def _json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, TypeError):
        return None
