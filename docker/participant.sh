#!/bin/sh
# A participant container: enroll once with its invitation (keys are generated here and stay in /home/participant),
# then run the worker.
set -eu
: "${PARTICIPANT:?}"
HOME_DIR=/participant
if [ ! -f "$HOME_DIR/identity.json" ]; then
  until [ -s "/invites/$PARTICIPANT.token" ]; do echo "waiting for an invitation…"; sleep 2; done
  confide participant enroll --invite "$(cat "/invites/$PARTICIPANT.token")" --home "$HOME_DIR" --data "/app/examples/salaries/$PARTICIPANT.csv"
fi
exec confide participant run --home "$HOME_DIR"
