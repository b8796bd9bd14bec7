#!/bin/sh
# One-shot: the researcher's secure mean of salary, once all three participants are enrolled.
set -eu
until [ -s /invites/researcher.token ]; do sleep 2; done
export CONFIDE_TOKEN="$(cat /invites/researcher.token)"
until confide query --study salaries --protocol shamir --stat mean --field salary --stat count --field salary --wait; do
  echo "retrying in 5 s…"; sleep 5
done
