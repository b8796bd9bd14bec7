#!/bin/sh
# One-shot, before everything else in `docker compose up`: the deployment's secrets, generated on the first up
# into the secrets volume and kept on later ones (the coordinator, PostgreSQL and the enrolled participants
# depend on them staying the same):
#   admin-token        the coordinator's bootstrap admin bearer token (CONFIDE_ADMIN_TOKEN)
#   redis-password     the coordinator's Redis administrator, confide-admin
#   postgres-password  PostgreSQL's `confide` user
#   users.acl          Redis's users: `default` off, so every client must log in (participants as their own users),
#                      and confide-admin with the SHA-256 of its password (the file never holds the password)
# Each is 32 bytes from /dev/urandom as 64 hex digits, with nothing but coreutils. docker-compose.yml mounts this
# volume into redis, postgres, the coordinator and setup only, never into a participant or the query.
# Run as root, it gives the files to the users that read them: node (1000) in the confide image for the tokens,
# redis (999) in the redis image for users.acl. CONFIDE_SECRETS_DIR defaults to the container's path; the e2e
# tests set it.
set -eu
DIR="${CONFIDE_SECRETS_DIR:-/secrets}"
umask 077

# $1: a file in DIR, generated only when it is missing; written whole or not at all (a temporary file, then mv).
generate() {
  [ -s "$DIR/$1" ] && return 0
  value="$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n')"
  [ "${#value}" -eq 64 ] || { echo "could not read 32 random bytes for $1" >&2; exit 1; }
  printf '%s' "$value" > "$DIR/$1.tmp"
  mv "$DIR/$1.tmp" "$DIR/$1"
  echo "generated $1"
}

mkdir -p "$DIR"
generate admin-token
generate redis-password
generate postgres-password
# Written again on every run from the kept password: the same content, and a file an interrupted run left out.
hash="$(printf '%s' "$(cat "$DIR/redis-password")" | sha256sum | cut -d' ' -f1)"
printf 'user default off\nuser confide-admin on #%s ~* &* +@all\n' "$hash" > "$DIR/users.acl.tmp"
mv "$DIR/users.acl.tmp" "$DIR/users.acl"

chmod 0600 "$DIR/admin-token" "$DIR/redis-password" "$DIR/postgres-password" "$DIR/users.acl"
if [ "$(id -u)" = 0 ]; then
  chown 1000:1000 "$DIR/admin-token" "$DIR/redis-password" "$DIR/postgres-password"
  chown 999:999 "$DIR/users.acl"
  # Others may pass through to the file they own, but not list the directory.
  chmod 0711 "$DIR"
fi
echo "secrets ready"
