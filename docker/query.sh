#!/bin/sh
# One-shot: the researcher's secure mean of salary, once all three participants are enrolled.
# CONFIDE_INVITES_DIR defaults to the container's path; the e2e tests set it.
set -eu
INVITES="${CONFIDE_INVITES_DIR:-/invites}"
until [ -s "$INVITES/researcher.token" ]; do sleep 2; done
CONFIDE_TOKEN="$(cat "$INVITES/researcher.token")"
export CONFIDE_TOKEN
# --insecure: plain http to http://coordinator:8080 on the compose network, which only this deployment's containers join.
until confide query --insecure --study salaries --protocol shamir --stat mean --field salary --stat count --field salary --wait; do
  echo "retrying in 5 s…"; sleep 5
done
