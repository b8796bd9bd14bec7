#!/bin/sh
# One-shot: create the study and one invitation per participant, handed over through the shared volume.
# (In a real consortium the admin sends each invitation to its participant privately.)
set -eu
until confide admin study create --file /app/examples/salaries/study.json --json > /invites/study.json 2>/tmp/err || grep -q conflict /tmp/err; do
  echo "waiting for the coordinator…"; sleep 2
done
for p in hospital-1 hospital-2 hospital-3; do
  [ -s "/invites/$p.token" ] && continue
  confide admin invite --study salaries --participant "$p" --json | sed -n 's/.*"token":"\([^"]*\)".*/\1/p' > "/invites/$p.token.tmp"
  mv "/invites/$p.token.tmp" "/invites/$p.token"
done
confide admin keys create --role researcher --json | sed -n 's/.*"token":"\([^"]*\)".*/\1/p' > /invites/researcher.token
echo "study and invitations ready"
