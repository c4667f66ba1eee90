"""A bare FastAPI + uvicorn + uvloop app that answers `GET /portfolio` with a body read from Redis on every request,
run in its own virtual environment by bench/peers.py: `python bare_portfolio_api.py PORT REDIS_URL KEY`.

The floor for TRADEOS's `GET /portfolio`: the same server stack (uvicorn, httptools, uvloop, access log off) and
one Redis GET per request, with nothing of TRADEOS's (no validation, no stores, no middleware).
"""

from __future__ import annotations

import sys

import redis.asyncio as redis
import uvicorn
from fastapi import FastAPI, Response

port, redis_url, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
client = redis.Redis.from_url(redis_url)
app = FastAPI()


@app.get("/portfolio")
async def portfolio() -> Response:
    return Response(await client.get(key), media_type="application/json")


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
