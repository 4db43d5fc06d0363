# shellcheck shell=bash
# Shared by the tests that run smtpgated under a real systemd (sourced):
# systemd booted in a container of this machine's own files
# (systemd-nspawn), in a network namespace of the test, the machine's files
# left unwritten.

ct_pid='' ct_init='' ct_state=''
ct_run_dirs_before=$(ls -d /run/systemd/nspawn /run/systemd/nspawn-root 2>/dev/null || true)

# ct_boot TREE NETNS LOG ARG...: systemd booted in NETNS, nspawn's output in
# LOG, each ARG given to systemd-nspawn (binds, then init's arguments), until
# its boot is over (60 s allowed): ct_state is then what systemd says of it
# (running, degraded), and in_ct runs a command there. TREE is "usr" (this
# machine's /usr, the rest empty: --volatile=yes; /sys/fs/bpf is not the
# machine's unless bound) or "all" (every file of this machine's root file
# system under an overlay whose writes go to memory, dpkg's database
# included; bpffs private to the container).
ct_boot() {
    local tree=$1 ns=$2 log=$3 keep_unit=--keep-unit
    shift 3
    # Under systemd as PID 1 nspawn makes a scope for the container;
    # otherwise it stays in the caller's cgroup.
    [ "$(cat /proc/1/comm)" = systemd ] && keep_unit=
    # nspawn's own filter would refuse bpf(2) to everything in the container.
    set -- --register=no $keep_unit --console=pipe --boot --network-namespace-path="/var/run/netns/$ns" \
        --capability=all --system-call-filter="bpf perf_event_open" "$@"
    if [ "$tree" = usr ]; then
        systemd-nspawn -D / --volatile=yes "$@" >"$log" 2>&1 &
    else
        # nspawn overlays only a tree other than /: / bound read-only on an
        # empty directory, in a mount namespace that ends with nspawn (so
        # nothing outside it ever sees the bind or the bpffs); unshare and sh
        # exec, so $! is nspawn.
        mkdir "$log.root" "$log.bpf"
        # shellcheck disable=SC2016,SC2094 # $0 and $@ are sh's; $log only names the directories
        unshare -m --propagation private sh -c \
            'mount --bind -o ro / "$0.root" && mount -t bpf bpf "$0.bpf" &&
             exec systemd-nspawn -D "$0.root" --volatile=overlay --bind="$0.bpf:/sys/fs/bpf" "$@"' \
            "$log" "$@" >"$log" 2>&1 &
    fi
    ct_pid=$!
    ct_state=
    for _ in $(seq 300); do
        [ -n "$ct_init" ] || ct_init=$(pgrep -P "$ct_pid" -x systemd || true)
        # Its bus, and with it the answer, comes some time after it runs.
        [ -n "$ct_init" ] && ct_state=$(in_ct systemctl is-system-running 2>/dev/null || true)
        case $ct_state in running | degraded | maintenance | stopping) return 0 ;; esac
        kill -0 "$ct_pid" 2>/dev/null || { cat "$log"; echo "systemd-nspawn exited"; return 1; }
        sleep 0.2
    done
    echo "the container's systemd is '$ct_state' after 60 s"
    return 1
}

# in_ct COMMAND...: COMMAND in the container's mount, PID and network namespaces.
in_ct() { nsenter -t "$ct_init" -m -p -n -- "$@"; }

# ct_stop: the container halted (killed after 10 s), nspawn's directories in
# /run removed when it made them. For the cleanup traps: never fails.
ct_stop() {
    local d
    if [ -n "$ct_pid" ]; then
        kill "$ct_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$ct_pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$ct_pid" 2>/dev/null || true
        wait "$ct_pid" 2>/dev/null || true
        ct_pid='' ct_init=''
    fi
    for d in /run/systemd/nspawn /run/systemd/nspawn-root; do
        echo "$ct_run_dirs_before" | grep -qx "$d" || rm -rf "$d"
    done
    return 0
}
