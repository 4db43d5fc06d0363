#!/usr/bin/env bash
# Bash completion of smtpgatectl and smtpgated, exercised as bash calls it:
# COMP_WORDS/COMP_CWORD set, the completion function called, COMPREPLY read.
# Runs in a network namespace of its own (unshare -n) holding one veth pair
# interface, and a state directory of its own with operator and feed ranges.
# Usage: completion.sh SOURCE_DIR SMTPGATECTL
set -euo pipefail
src=$1 ctl=$2

if [ "${SG_COMPLETION_INNER:-}" != 1 ]; then
    exec env SG_COMPLETION_INNER=1 unshare -n bash "$0" "$@"
fi

tag=sgt$$cmp
state=$(mktemp -d /tmp/$tag-state.XXXXXX)
pins=/sys/fs/bpf/$tag
trap 'rm -rf "$state" "$pins"' EXIT
ip link add ${tag}dum type veth peer name ${tag}peer

failures=0
# complete WORDS...: the last word is the one being completed ("" for a new one).
complete_words() {
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="${COMP_WORDS[*]}"
    COMPREPLY=()
    local fn
    fn=$(complete -p "$1" | sed -E 's/.*-F ([^ ]+) .*/\1/')
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
expect() {  # expect "WANT" WORDS...
    local want=$1
    shift
    local got
    got=$(complete_words "$@")
    if [ "$got" != "$want" ]; then
        echo "FAIL: '$*' completes to '$got', want '$want'"
        failures=$((failures + 1))
    else
        echo "ok: '$*' -> '$got'"
    fi
}
contains() {  # contains WORD WORDS...
    local want=$1
    shift
    local got
    got=$(complete_words "$@")
    if [[ " $got " != *" $want "* ]]; then
        echo "FAIL: '$*' completes to '$got', which lacks '$want'"
        failures=$((failures + 1))
    else
        echo "ok: '$*' offers '$want'"
    fi
}

# The completion files are plain bash: source them as bash-completion would.
source "$src/packaging/completion/smtpgate.bash"

# The operator's ranges, and the feed's (which 'ranges del' must not offer).
"$ctl" --state-dir "$state" --pin-dir "$pins" ranges add 40.95.0.0/16 --comment relay >/dev/null
"$ctl" --state-dir "$state" --pin-dir "$pins" ranges add 2a01:111:f406::/48 >/dev/null
"$ctl" --state-dir "$state" --pin-dir "$pins" feed import \
    "$src/tests/fixtures/m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json" >/dev/null
"$ctl" --state-dir "$state" --pin-dir "$pins" -j ranges list | grep -q '"origin": "feed"' ||
    { echo "FAIL: the feed import left no feed range to tell apart"; exit 1; }
# The completion runs the smtpgatectl of the command line: put ours first.
PATH=$(dirname "$ctl"):$PATH

expect "stats status" smtpgatectl st
expect "feed" smtpgatectl --json fe
expect "add del import list" smtpgatectl ranges ""
expect "drop monitor reject" smtpgatectl action ""
expect "import mirror status sync" smtpgatectl feed ""
expect "--allow-reserved" smtpgatectl ranges add 40.95.0.0/16 --al
expect "--limit" smtpgatectl top --li
expect "--follow" smtpgatectl drops --f
expect "feed-grace feed-other feed-pending feed-removed" smtpgatectl top --origin feed-
expect "USGovDoD USGovGCCHigh" smtpgatectl feed sync --instance USGov
expect "--watch" smtpgatectl stats --w
expect "--since" smtpgatectl drops --si
# Interfaces: the veth pair of this namespace, by prefix.
expect "${tag}dum ${tag}peer" smtpgatectl detach "${tag}"
contains lo smtpgatectl detach ""
# 'ranges del': the operator's ranges of the gate this command line names,
# not the feed's.
expect "2a01:111:f406::/48 40.95.0.0/16" smtpgatectl --state-dir "$state" --pin-dir "$pins" ranges del ""
expect "40.95.0.0/16" smtpgatectl --state-dir "$state" --pin-dir "$pins" ranges del 4
expect "" smtpgatectl --state-dir "$state" --pin-dir "$pins" ranges del 40.107
# smtpgated
expect "${tag}dum ${tag}peer" smtpgated --interface "${tag}"
expect "${tag}dum" smtpgated -i "${tag}d"
expect "monitor" smtpgated --action mo
expect "native skb" smtpgated --mode ""
expect "--no-attach --no-feed" smtpgated --no-
expect "--metrics-listen --metrics-textfile" smtpgated --interface eth0 --metrics

echo "$failures failed"
[ "$failures" -eq 0 ]
