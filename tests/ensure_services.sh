#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis the tests use are reachable; starts the local servers
# when they are installed but stopped. Honours TRADEOS_TEST_DATABASE_URL / TRADEOS_TEST_REDIS_URL.
set -u
pg_up() { python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", 5432)); sys.exit(0)
except OSError:
    sys.exit(1)
PY
}
if ! pg_up; then
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
    echo "starting local PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
if ! (command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1); then
  if command -v redis-server >/dev/null; then
    echo "starting local Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  fi
fi
for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432 (set TRADEOS_TEST_DATABASE_URL)"; exit 1; }
exit 0
