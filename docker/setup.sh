#!/bin/sh
# One-shot, as the admin: the study, one invitation per participant and the researcher's key. The admin token is
# read from the secrets volume, which no participant or query container mounts. Each invitation goes into that
# participant's own volume (invitations/<name>/token), with the coordinator key fingerprint beside it
# (coordinator-key), as a real admin would hand both over privately; the researcher's token goes into the
# researcher volume, which only the query container mounts. A second `docker compose up` keeps what exists.
# CONFIDE_SECRETS_DIR, CONFIDE_INVITATIONS_DIR, CONFIDE_RESEARCHER_DIR and CONFIDE_EXAMPLES_DIR default to the
# container's paths; the e2e tests set them.
set -eu
SECRETS="${CONFIDE_SECRETS_DIR:-/secrets}"
INVITATIONS="${CONFIDE_INVITATIONS_DIR:-/invitations}"
RESEARCHER="${CONFIDE_RESEARCHER_DIR:-/researcher}"
EXAMPLES="${CONFIDE_EXAMPLES_DIR:-/app/examples}"
CONFIDE_TOKEN="$(cat "$SECRETS/admin-token")"
export CONFIDE_TOKEN
umask 077
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT

# $1: a file, written whole or not at all from stdin (a reader waiting for it never sees half a token).
put() {
  cat > "$1.tmp"
  [ -s "$1.tmp" ] || { rm -f "$1.tmp"; echo "nothing to write to $1" >&2; exit 1; }
  mv "$1.tmp" "$1"
}
token() { sed -n 's/.*"token":"\([^"]*\)".*/\1/p'; }

# --insecure: plain http to http://coordinator:8080 on the compose network, which only this deployment's
# containers join; anywhere else the coordinator is reached over https.
# With --json, a refusal is a JSON object on stdout: a conflict means an earlier run of this container created
# the study (`docker compose up` again), and anything else means the coordinator is not up yet.
while :; do
  if confide admin study create --insecure --file "$EXAMPLES/salaries/study.json" --json > "$OUT"; then
    cp "$OUT" "$RESEARCHER/study.json"
    break
  fi
  grep -q '"error":"conflict"' "$OUT" && break
  echo "waiting for the coordinator…"; sleep 2
done

# The coordinator key fingerprint (GET /v1/coordinator, as libs/crypto keyFingerprint computes it), which each
# participant pins at enrollment. node is in the image; the CLI has no command that prints it.
# shellcheck disable=SC2016 # JavaScript template literals, not shell expansions
fingerprint="$(node -e '
  fetch(`${process.env.CONFIDE_URL.replace(/\/+$/, "")}/v1/coordinator`, { headers: { authorization: `Bearer ${process.env.CONFIDE_TOKEN}` } })
    .then((res) => (res.ok ? res.json() : Promise.reject(new Error(`HTTP ${res.status}`))))
    .then((body) => {
      if (!/^[0-9a-f]{64}$/.test(String(body.fingerprint))) throw new Error("no key fingerprint in the answer");
      process.stdout.write(body.fingerprint);
    })
    .catch((err) => { console.error(`GET /v1/coordinator: ${err.message}`); process.exit(1); });
')"

for p in hospital-1 hospital-2 hospital-3; do
  dir="$INVITATIONS/$p"
  # The fingerprint first: a participant starts enrolling as soon as its token is there.
  [ -s "$dir/coordinator-key" ] || printf '%s' "$fingerprint" | put "$dir/coordinator-key"
  [ -s "$dir/token" ] || confide admin invite --insecure --study salaries --participant "$p" --json | token | put "$dir/token"
done
[ -s "$RESEARCHER/token" ] || confide admin keys create --insecure --role researcher --json | token | put "$RESEARCHER/token"
echo "study and invitations ready"
