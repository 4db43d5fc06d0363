#!/bin/sh
# Postfix cidr: table of EOP's addresses as the gate knows them, from
# "smtpgatectl ranges list --json" on stdin: the feed's ranges (applied,
# pending, in removal grace, other instances') and the eop-confirmed hosts,
# each mapped to the restriction class smtpgate_eop_tls. Operator ranges and
# ranges removed from the feed are left out.
#   smtpgatectl ranges list --json | sh eop-cidr.sh > /etc/postfix/smtpgate-eop.cidr.new &&
#   mv /etc/postfix/smtpgate-eop.cidr.new /etc/postfix/smtpgate-eop.cidr
set -eu
out=$(jq -r '
  if .schema != 1 then error("ranges list --json: schema \(.schema), expected 1") else . end
  | [.ranges[]
     | select(.origin == "feed" or .origin == "feed-pending" or .origin == "feed-grace"
              or .origin == "feed-other" or .origin == "eop-confirmed")
     | .range] | unique | .[] | "\(.)\tsmtpgate_eop_tls"')
if [ -z "$out" ]; then
    echo "eop-cidr.sh: no feed range in the input: is the feed applied (smtpgatectl status)?" >&2
    exit 1
fi
echo "# EOP's addresses from smtpgatectl ranges list; regenerate after feed changes."
echo "$out"
