#!/bin/sh
# One-shot: the researcher's secure mean of salary, once all three participants are enrolled. The researcher's
# token is in the researcher volume, which setup writes and only this container reads.
# CONFIDE_RESEARCHER_DIR defaults to the container's path; the e2e tests set it.
set -eu
RESEARCHER="${CONFIDE_RESEARCHER_DIR:-/researcher}"
until [ -s "$RESEARCHER/token" ]; do sleep 2; done
CONFIDE_TOKEN="$(cat "$RESEARCHER/token")"
export CONFIDE_TOKEN
# --insecure: plain http to http://coordinator:8080 on the compose network, which only this deployment's containers join.
until confide query --insecure --study salaries --protocol shamir --stat mean --field salary --stat count --field salary --wait; do
  echo "retrying in 5 s…"; sleep 5
done
