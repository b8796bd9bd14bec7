#!/bin/sh
# A participant container: enroll once with the invitation in its own volume (its keys are generated here and
# stay in its home), then run the worker. It holds no API key: the invitation is its only credential, used once.
# PARTICIPANT names it; CONFIDE_PARTICIPANT_HOME, CONFIDE_INVITATION_DIR and CONFIDE_EXAMPLES_DIR default to the
# container's paths; the e2e tests set them.
set -eu
: "${PARTICIPANT:?}"
HOME_DIR="${CONFIDE_PARTICIPANT_HOME:-/participant}"
INVITATION="${CONFIDE_INVITATION_DIR:-/invitation}"
EXAMPLES="${CONFIDE_EXAMPLES_DIR:-/app/examples}"
if [ ! -f "$HOME_DIR/identity.json" ]; then
  until [ -s "$INVITATION/token" ]; do echo "waiting for an invitation…"; sleep 2; done
  # --insecure: plain http to http://coordinator:8080 on the compose network, which only this deployment's
  # containers join. --accept-settings: this demo's participants accept the example study's settings (minimum
  # participants, group size, privacy); a real participant reads them at enrollment and answers the prompt.
  # --coordinator-key: the fingerprint the admin handed over with the invitation; enrollment stops on another key.
  confide participant enroll --insecure --accept-settings \
    --coordinator-key "$(cat "$INVITATION/coordinator-key")" --invite "$(cat "$INVITATION/token")" \
    --home "$HOME_DIR" --data "$EXAMPLES/salaries/$PARTICIPANT.csv"
fi
exec confide participant run --home "$HOME_DIR"
