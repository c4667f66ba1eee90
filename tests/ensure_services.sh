#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis the tests use are reachable: TRADEOS_TEST_DATABASE_URL and
# TRADEOS_TEST_REDIS_URL (defaults: postgresql://postgres@127.0.0.1:5432/test, redis://127.0.0.1:6379, as in
# tests/conftest.py). A local server is started only when its URL is the local default and the server is installed
# but stopped; any other URL is only checked, never replaced by a local server. Exit 1 names what is unreachable.
set -u
DATABASE_URL="${TRADEOS_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"
REDIS_URL="${TRADEOS_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
PYTHON="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

# probe MODE URL: `connect` connects (and authenticates) with psycopg / redis-py, printing why it cannot when it
# cannot; `listen` only opens a TCP connection to the URL's host and port.
probe() { "$PYTHON" - "$1" "$2" <<'PY'
import socket, sys
from urllib.parse import urlsplit
mode, url = sys.argv[1], sys.argv[2]
is_redis = url.startswith("redis")
if mode == "connect":
    try:
        if is_redis:
            import redis
            redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
        else:
            import psycopg
            psycopg.connect(url, connect_timeout=2).close()
        sys.exit(0)
    except ImportError:
        pass  # no client library here: the TCP check below is all we can do
    except Exception as exc:
        print(f"  {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        sys.exit(1)
parts = urlsplit(url)
try:
    socket.create_connection((parts.hostname or "127.0.0.1", parts.port or (6379 if is_redis else 5432)), 2).close()
except OSError as exc:
    print(f"  {exc}") if mode == "connect" else None
    sys.exit(1)
PY
}
reachable() { probe connect "$1" >/dev/null; }
listening() { probe listen "$1"; }

# is_local_default URL PORT: the URL names this machine's server on its default port (or no port at all).
is_local_default() { "$PYTHON" - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit
parts = urlsplit(sys.argv[1])
sys.exit(0 if parts.hostname in ("127.0.0.1", "localhost") and (parts.port or int(sys.argv[2])) == int(sys.argv[2]) else 1)
PY
}

# shown URL: without its password, for messages.
shown() { "$PYTHON" -c 'import sys, re; print(re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", sys.argv[1]))' "$1"; }

wait_for() { for _ in $(seq 1 30); do listening "$1" && return 0; sleep 0.5; done; return 1; }

if ! listening "$DATABASE_URL"; then
  if is_local_default "$DATABASE_URL" 5432 && [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
    echo "starting local PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_for "$DATABASE_URL"
  fi
fi
if ! listening "$REDIS_URL"; then
  if is_local_default "$REDIS_URL" 6379 && command -v redis-server >/dev/null; then
    echo "starting local Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
    wait_for "$REDIS_URL"
  fi
fi
status=0
why=$(probe connect "$DATABASE_URL") || {
  echo "PostgreSQL is not reachable at $(shown "$DATABASE_URL") (TRADEOS_TEST_DATABASE_URL)"; echo "$why"; status=1; }
why=$(probe connect "$REDIS_URL") || {
  echo "Redis is not reachable at $(shown "$REDIS_URL") (TRADEOS_TEST_REDIS_URL)"; echo "$why"; status=1; }
exit $status
