#!/bin/sh
# One-shot: create the study and one invitation per participant, handed over through the shared volume.
# (In a real consortium the admin sends each invitation to its participant privately.)
# CONFIDE_INVITES_DIR and CONFIDE_EXAMPLES_DIR default to the container's paths; the e2e tests set them.
# --insecure on every call: plain http to http://coordinator:8080 on the compose network, which only this
# deployment's containers join; anywhere else the coordinator is reached over https.
set -eu
INVITES="${CONFIDE_INVITES_DIR:-/invites}"
EXAMPLES="${CONFIDE_EXAMPLES_DIR:-/app/examples}"
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT

# With --json, a refusal is a JSON object on stdout: a conflict means an earlier run of this container created
# the study (`docker compose up` again), and anything else means the coordinator is not up yet.
while :; do
  if confide admin study create --insecure --file "$EXAMPLES/salaries/study.json" --json > "$OUT"; then
    cp "$OUT" "$INVITES/study.json"
    break
  fi
  grep -q '"error":"conflict"' "$OUT" && break
  echo "waiting for the coordinator…"; sleep 2
done
for p in hospital-1 hospital-2 hospital-3; do
  [ -s "$INVITES/$p.token" ] && continue
  confide admin invite --insecure --study salaries --participant "$p" --json | sed -n 's/.*"token":"\([^"]*\)".*/\1/p' > "$INVITES/$p.token.tmp"
  mv "$INVITES/$p.token.tmp" "$INVITES/$p.token"
done
if [ ! -s "$INVITES/researcher.token" ]; then
  confide admin keys create --insecure --role researcher --json | sed -n 's/.*"token":"\([^"]*\)".*/\1/p' > "$INVITES/researcher.token.tmp"
  mv "$INVITES/researcher.token.tmp" "$INVITES/researcher.token"
fi
echo "study and invitations ready"
