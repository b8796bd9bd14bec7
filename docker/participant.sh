#!/bin/sh
# A participant container: enroll once with its invitation (keys are generated here and stay in its home),
# then run the worker. CONFIDE_PARTICIPANT_HOME, CONFIDE_INVITES_DIR and CONFIDE_EXAMPLES_DIR default to the
# container's paths; the e2e tests set them.
set -eu
: "${PARTICIPANT:?}"
HOME_DIR="${CONFIDE_PARTICIPANT_HOME:-/participant}"
INVITES="${CONFIDE_INVITES_DIR:-/invites}"
EXAMPLES="${CONFIDE_EXAMPLES_DIR:-/app/examples}"
if [ ! -f "$HOME_DIR/identity.json" ]; then
  until [ -s "$INVITES/$PARTICIPANT.token" ]; do echo "waiting for an invitation…"; sleep 2; done
  # --insecure: plain http to http://coordinator:8080 on the compose network, which only this deployment's
  # containers join. --accept-settings: this demo's participants accept the example study's settings (minimum
  # participants, group size, privacy); a real participant reads them at enrollment and answers the prompt.
  confide participant enroll --insecure --accept-settings --invite "$(cat "$INVITES/$PARTICIPANT.token")" \
    --home "$HOME_DIR" --data "$EXAMPLES/salaries/$PARTICIPANT.csv"
fi
exec confide participant run --home "$HOME_DIR"
