#!/bin/sh
# The coordinator container: its bootstrap admin token and its Redis and PostgreSQL passwords come from the
# secrets volume the one-shot `secrets` service filled (docker/secrets.sh), so none of them is written in
# docker-compose.yml or shows in `docker inspect`. It logs in to Redis as the administrator confide-admin, since
# `default` is off there; participants are given the address without credentials and log in as their own users.
# CONFIDE_SECRETS_DIR and CONFIDE_REDIS_ADDRESS default to the container's; DATABASE_URL, when set, replaces
# the compose PostgreSQL. The e2e tests set them.
set -eu
SECRETS="${CONFIDE_SECRETS_DIR:-/secrets}"
REDIS_ADDRESS="${CONFIDE_REDIS_ADDRESS:-redis:6379}"
CONFIDE_ADMIN_TOKEN="$(cat "$SECRETS/admin-token")"
REDIS_URL="redis://confide-admin:$(cat "$SECRETS/redis-password")@$REDIS_ADDRESS"
CONFIDE_PUBLIC_REDIS_URL="redis://$REDIS_ADDRESS"
DATABASE_URL="${DATABASE_URL:-postgres://confide:$(cat "$SECRETS/postgres-password")@postgres:5432/confide}"
export CONFIDE_ADMIN_TOKEN REDIS_URL CONFIDE_PUBLIC_REDIS_URL DATABASE_URL
exec confide coordinator start
