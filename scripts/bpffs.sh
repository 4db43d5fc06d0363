# Sourced by the scripts that pin under /sys/fs/bpf (the test command, the
# demo, the benchmarks): they mount bpffs there when it is not mounted, and
# leave the machine as they found it. The kernel fills every new bpffs mount
# with its own preload iterators (maps.debug, progs.debug; CONFIG_BPF_PRELOAD),
# which cannot be unlinked, so a mount of ours is undone when the run has
# left nothing else in it. A mount that was there before, or that holds
# anything else (a gate still pinned, another tool's pins), stays.
SG_BPFFS=/sys/fs/bpf
SG_BPFFS_OURS=

# Mounts bpffs at /sys/fs/bpf unless it is mounted already.
bpffs_acquire() {
  mountpoint -q "$SG_BPFFS" && return 0
  mount -t bpf bpf "$SG_BPFFS" || return 1
  SG_BPFFS_OURS=1
}

# Unmounts it again if bpffs_acquire mounted it and only the kernel's
# preload iterators are left in it.
bpffs_release() {
  [ -n "$SG_BPFFS_OURS" ] || return 0
  local entry
  for entry in "$SG_BPFFS"/* "$SG_BPFFS"/.[!.]*; do
    [ -e "$entry" ] || continue
    case "${entry##*/}" in
      maps.debug | progs.debug) ;;
      *) return 0 ;;
    esac
  done
  umount "$SG_BPFFS" && SG_BPFFS_OURS=
}
