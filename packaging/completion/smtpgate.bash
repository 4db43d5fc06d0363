# bash completion for smtpgatectl(8) and smtpgated(8)        -*- shell-script -*-
# Installed under both names, so bash-completion finds it for either command.

# The operator's ranges (the only ones 'ranges del' takes), read from the gate
# this command line points at (its --pin-dir/--state-dir).
_smtpgatectl_operator_ranges()
{
    local -a dirs=()
    local i
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        case ${COMP_WORDS[i]} in
            --pin-dir | --state-dir) dirs+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}") ;;
        esac
    done
    "${COMP_WORDS[0]}" "${dirs[@]}" ranges list -j 2>/dev/null | awk '
        /"origin":/ { o = $0; sub(/.*"origin": *"/, "", o); sub(/".*/, "", o) }
        /"range":/  { r = $0; sub(/.*"range": *"/, "", r); sub(/".*/, "", r) }
        /^ *}/      { if (o == "operator" && r != "") print r; o = ""; r = "" }'
}

# Interface names of this network namespace ("veth0@peer" is shown as veth0).
_smtpgate_interfaces()
{
    ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'
}

_smtpgatectl()
{
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    local global_opts="--pin-dir --state-dir -j --json -v --verbose -h --help"

    case $prev in
        --pin-dir | --state-dir)
            COMPREPLY=($(compgen -d -- "$cur"))
            return ;;
        --instance)
            COMPREPLY=($(compgen -W "Worldwide USGovDoD USGovGCCHigh China" -- "$cur"))
            return ;;
        --config)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        --origin)
            COMPREPLY=($(compgen -W "operator feed feed-pending feed-grace feed-removed feed-other eop-confirmed" -- "$cur"))
            return ;;
        --comment | --feed-url | --version | --limit | --since | --watch)
            return ;;
    esac

    # The command path so far (words that are not options or their values).
    local -a cmd=()
    local i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
            --pin-dir | --state-dir | --instance | --config | --origin | --comment | --feed-url | --version | --limit | --since)
                ((i++)) ;;
            -*) ;;
            *) cmd+=("$w") ;;
        esac
    done

    local words="" opts=""
    case "${cmd[*]}" in
        "")
            words="status ranges stats top drops explain action detach feed" ;;
        ranges)
            words="list add del import" ;;
        "ranges list" | status | "feed status")
            ;;
        "ranges add" | "ranges add "*)
            opts="--comment --deny --allow-reserved" ;;
        "ranges del")
            words=$(_smtpgatectl_operator_ranges) ;;
        "ranges import")
            opts="--deny --allow-reserved"
            [[ $cur != -* ]] && { COMPREPLY=($(compgen -f -- "$cur")); return; } ;;
        stats)
            opts="--watch" ;;
        top)
            opts="--limit --origin --watch" ;;
        drops)
            opts="--follow --since" ;;
        action)
            words="drop reject monitor" ;;
        detach)
            words=$(_smtpgate_interfaces) ;;
        feed)
            words="sync import status mirror"
            opts="--config --instance --feed-url --force" ;;
        "feed sync")
            opts="--config --instance --feed-url --force" ;;
        "feed import")
            opts="--version --config --instance --feed-url --force"
            [[ $cur != -* ]] && { COMPREPLY=($(compgen -f -- "$cur")); return; } ;;
        "feed mirror")
            opts="--config --instance --feed-url"
            [[ $cur != -* ]] && { COMPREPLY=($(compgen -d -- "$cur")); return; } ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $global_opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
} &&
    complete -F _smtpgatectl smtpgatectl

_smtpgated()
{
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}

    case $prev in
        -i | --interface)
            COMPREPLY=($(compgen -W "$(_smtpgate_interfaces)" -- "$cur"))
            return ;;
        --mode)
            COMPREPLY=($(compgen -W "native skb" -- "$cur"))
            return ;;
        --action)
            COMPREPLY=($(compgen -W "drop reject monitor" -- "$cur"))
            return ;;
        --instance)
            COMPREPLY=($(compgen -W "Worldwide USGovDoD USGovGCCHigh China" -- "$cur"))
            return ;;
        -c | --config | --metrics-textfile)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        --pin-dir | --state-dir)
            COMPREPLY=($(compgen -d -- "$cur"))
            return ;;
        --ports | --feed-url | --metrics-listen)
            return ;;
    esac

    COMPREPLY=($(compgen -W "-c --config -i --interface --mode --action --ports --pin-dir --state-dir
        --allow-empty --no-attach --feed-url --instance --no-feed --force --metrics-listen
        --metrics-textfile --check-config -v --verbose -h --help" -- "$cur"))
} &&
    complete -F _smtpgated smtpgated

# ex: filetype=sh
