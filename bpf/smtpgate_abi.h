/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * smtpgate ABI: the one header shared by the XDP program and the C++ loader.
 * Everything that crosses the kernel/userspace boundary is defined here: map
 * key and value layouts, enums stored in maps, limits. Changing a layout here
 * changes both sides at once. Pinned maps of another layout are never reused
 * (nor misread): smtpgated replaces such a gate beside itself, carrying
 * values over by field name through each map's BTF (loader/ops/upgrade.hpp).
 */
#ifndef SMTPGATE_ABI_H
#define SMTPGATE_ABI_H

#ifdef __BPF__
#include <linux/types.h>
#else
#include <linux/types.h>
#endif

/* Guarded destination ports: a short list (what the operator set, read
 * back by userspace) and, for the program, one bit per port. */
#define SG_MAX_PORTS 8
#define SG_PORT_WORDS (65536 / 32)

/* Rule ids index the per-rule counters. Id 0 is the default rule: a source
 * that no range explains. Range rules are 1..max_rules-1. */
#define SG_RULE_DEFAULT 0
#define SG_DEFAULT_MAX_RULES 65536

/* Default size of the recently-refused table, in sources per CPU. */
#define SG_DEFAULT_RECENT_SOURCES 16384

/* Two allowlist buffers: the program reads the active one; userspace fills
 * the other and flips sg_state.active_slot (see docs/design.md). */
#define SG_SLOTS 2

/* Deepest IPv6 extension-header chain walked before the packet is judged on
 * its source alone (fail closed: see docs/design.md). */
#define SG_MAX_EXT_HEADERS 8

/* Most VLAN tags walked (as the kernel's VLAN_MAX_DEPTH). Linux strips any
 * number of priority tags; a frame with more than this is refused unread
 * (fail closed: see docs/design.md). */
#define SG_MAX_VLAN_TAGS 8

/* Verdict for a source that is not admitted. Chosen at run time. */
enum sg_action {
	SG_ACTION_DROP = 0, /* XDP_DROP: EOP reports 4.4.315 timed out */
	SG_ACTION_REJECT = 1, /* RST+ACK via XDP_TX: EOP reports 4.4.316 refused */
	SG_ACTION_MONITOR = 2, /* count as would-refuse, then pass */
	SG_ACTION_MAX,
};

/* What a range does to a SYN whose source it is the longest match for. */
enum sg_rule_kind {
	SG_KIND_NONE = 0,
	SG_KIND_ADMIT = 1, /* allowlist: admitted */
	SG_KIND_DENY = 2, /* operator deny: refused, wins ties with admit */
	SG_KIND_WATCH = 3, /* known but not admitted (e.g. unapplied feed range) */
	SG_KIND_MAX,
};

/* The user-facing outcome of one packet; exactly one per packet. */
enum sg_verdict {
	SG_VERDICT_PASS = 0, /* not judged: not a guarded SYN */
	SG_VERDICT_ADMIT = 1, /* judged, source admitted */
	SG_VERDICT_DROP = 2, /* judged, refused with XDP_DROP */
	SG_VERDICT_REJECT = 3, /* judged, refused with an RST via XDP_TX */
	SG_VERDICT_MONITOR = 4, /* judged, would be refused, passed (monitor) */
	SG_VERDICT_MAX,
};

/* Why the packet got its verdict; exactly one per packet. */
enum sg_reason {
	SG_REASON_NOT_IP = 0, /* not IPv4/IPv6 (after the VLAN tags) */
	SG_REASON_NOT_TCP = 1, /* IP, but the upper layer is not TCP */
	SG_REASON_OTHER_PORT = 2, /* a SYN (or first fragment) to a port that is not guarded */
	SG_REASON_NOT_SYN = 3, /* TCP that is not a SYN without ACK, to any port */
	SG_REASON_LATER_FRAGMENT = 4, /* non-first fragment: passes (see design) */
	SG_REASON_MALFORMED = 5, /* headers cut or invalid before judging: the
				    stack drops what it cannot parse */
	SG_REASON_RULE_ADMIT = 6, /* longest match is an admit range */
	SG_REASON_RULE_DENY = 7, /* longest match is an operator deny range */
	SG_REASON_RULE_WATCH = 8, /* longest match is a watch range */
	SG_REASON_DEFAULT = 9, /* no range matches the source */
	SG_REASON_NO_ALLOWLIST = 10, /* no allowlist published yet: fail closed */
	SG_REASON_REJECT_AS_DROP = 11, /* reject asked, but no RST can be built
					  (fragment, cut TCP header, no Ethernet
					  header) or none may be sent (special-
					  purpose address, frame not unicast):
					  dropped */
	SG_REASON_TAG_LIMIT = 12, /* more VLAN tags than walked: refused as a
				     SYN from a source no range explains */
	SG_REASON_MAX,
};

/* Why a judged packet was judged (recorded in events). */
enum sg_judged_as {
	SG_JUDGED_SYN = 0, /* a complete SYN to a guarded port */
	SG_JUDGED_FIRST_FRAGMENT = 1, /* first fragment to a guarded port */
	SG_JUDGED_TINY_FRAGMENT = 2, /* first fragment too short to name a port */
	SG_JUDGED_EXT_LIMIT = 3, /* IPv6 extension chain longer than walked */
};

/* Which allowlist slot the program reads. Its change is the single write
 * that publishes a new allowlist: userspace stores both fields at once (one
 * aligned 8-byte store through the mmapped gate_config), the program loads
 * them at once. */
struct sg_state {
	__u32 active_slot; /* 0 or 1 */
	__u32 generation; /* bumped on every publish; 0: none yet */
};

/* gate_config[0] (mmapable): written by userspace, read by every TCP packet.
 * The configuration fields and the state are written separately, so that a
 * change of action never touches the slot and a publish never the action.
 * The map's value is page-aligned (mmapable), so its first 64 bytes are one
 * cache line: the state, what a refusal reads, and the bits of ports 0-319
 * (port 25 among them) lie in it, and a SYN to port 25 reads that line alone. */
struct sg_config {
	struct sg_state state; /* first: one aligned 8-byte word */
	__u32 action; /* enum sg_action */
	__u32 events_per_sec; /* per-CPU ring buffer event budget; 0 = none */
	__u32 recent_sets; /* sets in recent_refused (a power of two) */
	__u32 nports; /* entries used in ports[] */
	/* Bit p of this bitmap is set when port p (host byte order) is
	 * guarded: the program tests it with one load. The same ports as
	 * ports[]; userspace writes both. */
	__u32 port_bits[SG_PORT_WORDS];
	__u16 ports[SG_MAX_PORTS]; /* host byte order; read by userspace */
};

/* LPM trie keys: prefixlen first, as the LPM trie requires. Address bytes in
 * network order. */
struct sg_lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct sg_lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* LPM trie value: the rule that decides for sources under this prefix.
 * prefixlen repeats the key's, so a lookup says which prefix matched. */
struct sg_rule_ref {
	__u32 rule_id;
	__u16 kind; /* enum sg_rule_kind */
	__u16 prefixlen;
};

/*
 * The stride table: the allowlist compiled into arrays, so that a judged SYN
 * costs a few array reads instead of a walk of the LPM trie (see
 * docs/design.md, "The stride table"). One ARRAY map per family of chunks of
 * 256 entries. IPv6 reads it as a direct-indexed multibit trie, a chunk
 * indexed by one byte of the source address; IPv4 reads only its pool, for
 * the /24 entries and the nodes below (the IPv4 lookup, below):
 *
 *   elements [slot * 256, slot * 256 + 256)  the root of allowlist slot `slot`:
 *                                          element = first byte, entry = second
 *   elements [SG_TABLE_FIRST_CHUNK, ...)     chunks, indexed by the next byte
 *
 * An entry is a leaf (kind and rule id; 0 is the default rule), a chunk
 * number for the next byte, or "ask the LPM trie" (the chunk pool ran out, or
 * an IPv6 prefix is longer than the table's depth). The trie always holds the
 * whole allowlist, so the table can only be faster, never different.
 */
#define SG_CHUNK_ENTRIES 256
#define SG_TABLE_FIRST_CHUNK (SG_SLOTS * 256)
#define SG_TABLE_V6_LEVELS 6 /* bytes 2..7: prefixes up to /64 */
#define SG_DEFAULT_TABLE_CHUNKS 1024 /* chunk pool per family, both slots */

#define SG_ENTRY_CHUNK 0x80000000u /* low bits: chunk number */
#define SG_ENTRY_TRIE 0x40000000u /* ask the LPM trie */
/* An IPv6 root entry a patch handed to the trie (see SG_DIR_TRIE): asks the
 * trie as SG_ENTRY_TRIE does (the program tests the bit), told apart so that
 * the patches' cost can be counted. */
#define SG_ENTRY_TRIE_PATCHED (SG_ENTRY_TRIE | 1u)
#define SG_ENTRY_KIND_SHIFT 24 /* leaf: kind in bits 24..25 */
#define SG_ENTRY_KIND_MASK 0x3u
#define SG_ENTRY_RULE_MASK 0x00ffffffu /* leaf: rule id in bits 0..23 */
#define SG_MAX_RULES_LIMIT (SG_ENTRY_RULE_MASK + 1)

struct sg_chunk {
	__u32 entry[SG_CHUNK_ENTRIES];
};

/*
 * The IPv4 lookup: one structure that is both the filter and the lookup (in
 * the spirit of Poptrie and DXR; see docs/design.md, "The stride table").
 * IPv4 does not use table_v4's roots: a source is looked up through
 *   1. the /20 directory: one bit per /20 block that some prefix overlaps,
 *      64 to a 16-byte word that also holds the number of bits set in the
 *      words before it (its rank), so one read gives the bit and the rank.
 *      256 KiB a slot. A clear bit: the default rule's.
 *   2. the /20 groups: per set /20 block, in order, a 16-bit mask of its /24
 *      blocks that some prefix overlaps; six masks to a 16-byte group, which
 *      also holds the number of /24 bits set in the groups before it (its
 *      base). A clear bit: the default rule's; base SG_GROUP_TRIE: ask the
 *      trie (the pool is full).
 *   3. the /24 entries, one per set /24 block in order, in table_v4's chunk
 *      pool (entry number base + the /24 bits before this one): a leaf for
 *      the whole /24, SG_ENTRY_TRIE, or SG_ENTRY_CHUNK with the number of a
 *      node in the pool that resolves the last byte:
 *        - small (SG_ENTRY_NODE_BITMAP clear): a header of up to three
 *          boundaries (9 bits each, SG_NODE_NO_BOUNDARY when unused), then
 *          one leaf per run of equal leaves: the run of the last byte b is
 *          the number of boundaries <= b;
 *        - bitmap (SG_ENTRY_NODE_BITMAP set): 256 bits (four 64-bit words,
 *          at an even entry), bit b set where a run starts (bit 0 always),
 *          then the leaves of the runs: the run of b is the number of bits
 *          set at or below b, minus one.
 *      Entry and node numbers count 32-bit entries from the first chunk of
 *      the pool (element SG_TABLE_FIRST_CHUNK); a node never spans two
 *      chunks.
 * prefilter_v4 holds the directories from SG_DIR_INDEX(slot) and the groups
 * from SG_GROUP_INDEX(slot), in 1 KiB elements. Every check that fails
 * (a number past the end of a map) asks the trie, never admits.
 */
#define SG_DIR_WORDS (1u << 14) /* 64 /20 blocks a word */
#define SG_DIR_WORDS_PER_CHUNK 64 /* 16 bytes a word */
#define SG_DIR_CHUNKS (SG_DIR_WORDS / SG_DIR_WORDS_PER_CHUNK) /* 256 */
#define SG_GROUP_MASKS 6 /* /20 blocks a group */
#define SG_GROUPS (((1u << 20) + SG_GROUP_MASKS - 1) / SG_GROUP_MASKS)
#define SG_GROUPS_PER_CHUNK 64 /* 16 bytes a group */
#define SG_GROUP_CHUNKS ((SG_GROUPS + SG_GROUPS_PER_CHUNK - 1) / SG_GROUPS_PER_CHUNK)
#define SG_GROUP_TRIE 0xffffffffu
/* n / SG_GROUP_MASKS as (n * MUL) >> SHIFT, exact for n < 2^20. */
#define SG_GROUP_DIV_MUL 5726623062ull
#define SG_GROUP_DIV_SHIFT 35
#define SG_DIR_INDEX(slot) ((slot)*SG_DIR_CHUNKS)
#define SG_GROUP_INDEX(slot) (SG_SLOTS * SG_DIR_CHUNKS + (slot)*SG_GROUP_CHUNKS)
#define SG_PREFILTER_ELEMENTS (SG_SLOTS * (SG_DIR_CHUNKS + SG_GROUP_CHUNKS))
/* A patch (docs/design.md, "Patching the allowlist") hands what a changed
 * prefix covers to the trie in the active slot, in place: the rank of each
 * directory word the prefix overlaps becomes SG_DIR_TRIE, so that every set
 * bit of that word asks the trie (rank + 63 stays below 2^32 and at least
 * SG_GROUPS * SG_GROUP_MASKS; a full publish never writes a rank that high).
 * The program loads a word's bits before its rank; a patch stores the rank
 * before the bits, so a program that sees a new bit sees the new rank. */
#define SG_DIR_TRIE 0xffffff00u
#define SG_ENTRY_NODE_BITMAP 0x20000000u /* node entry: a bitmap node */
#define SG_ENTRY_NODE_MASK 0x1fffffffu /* node entry: its number */
#define SG_NODE_SMALL_RUNS 4
#define SG_NODE_NO_BOUNDARY 0x100u
#define SG_NODE_BITMAP_WORDS 8 /* 32-bit entries of a bitmap node's bits */
#define SG_NODE_MAX_LEAVES (SG_CHUNK_ENTRIES - SG_NODE_BITMAP_WORDS)

/* A directory word and a group, as they lie in a prefilter_v4 element. */
struct sg_dir_word {
	__u64 bits; /* bit i: /20 block 64 * word + i */
	__u32 rank; /* bits set in the words before */
	__u32 pad;
};

struct sg_group {
	__u64 masks; /* masks 0..3, 16 bits each, mask 0 lowest */
	__u32 masks_hi; /* masks 4 and 5 */
	__u32 base; /* /24 entry number of the group's first set /24 */
};

/*
 * The summary: one bit per /16 block of each family, set when some prefix of
 * the allowlist overlaps the block. Read before anything else: a source in a
 * clear block is the default rule's after 8 KiB of bits that stay in cache,
 * without the root (256 KiB a slot) being touched, which a flood of spread
 * sources would otherwise miss in cache at every SYN. summary elements
 * [SG_SUMMARY_INDEX(slot, family), + SG_SUMMARY_CHUNKS) hold the bits of a
 * slot and family (family 4 or 6), 8192 to an element.
 */
#define SG_SUMMARY_BITS_PER_CHUNK (SG_CHUNK_ENTRIES * 32)
#define SG_SUMMARY_CHUNKS ((1u << 16) / SG_SUMMARY_BITS_PER_CHUNK) /* 8 */
#define SG_SUMMARY_INDEX(slot, family) ((((slot)*2u) + ((family) == 6)) * SG_SUMMARY_CHUNKS)
#define SG_SUMMARY_ELEMENTS (SG_SLOTS * 2u * SG_SUMMARY_CHUNKS)

/* rule_counters[rule_id], per CPU. "refused" counts drop, reject and
 * monitor's would-refuse alike; the verdict counters tell them apart. */
struct sg_rule_counters {
#ifdef SG_ABI_TEST_PAD
	__u64 test_pad; /* tests only: another layout to upgrade to */
#endif
	__u64 admit_packets;
	__u64 admit_bytes;
	__u64 refuse_packets;
	__u64 refuse_bytes;
};

/* packet_counters[SG_COUNTER_INDEX(verdict, reason)], per CPU: one update
 * per packet counts both; userspace sums by verdict and by reason. */
#define SG_COUNTER_INDEX(verdict, reason)                                                          \
	((__u32)(reason) * (__u32)SG_VERDICT_MAX + (__u32)(verdict))
#define SG_PACKET_COUNTERS ((__u32)SG_VERDICT_MAX * (__u32)SG_REASON_MAX)
struct sg_counter {
	__u64 packets;
	__u64 bytes;
};

/* recent_refused[set], per CPU: the recently refused sources, a
 * set-associative table with least-recently-seen replacement within a set.
 * The set is a hash of the source; userspace merges the CPUs' copies. A
 * refused SYN costs a hash and a few compares, also under a flood of new
 * sources (an LRU hash map insert would cost more than the rest of the
 * program). */
#define SG_RECENT_WAYS 4
/* Sources refused by the default rule (no range explains them) enter the
 * table at most this often per second per CPU: a scan from spread sources
 * must not churn out the sources of known ranges, nor pay a cache miss per
 * SYN for addresses nobody will ask about. */
#define SG_RECENT_DEFAULT_PER_SEC 4096
/* Sources refused by a range (deny, watch) enter it at most this often per
 * second per CPU, a budget of their own (a table's worth at the default
 * size): a spoofed flood from a range is recorded this often and then only
 * counted. */
#define SG_RECENT_RANGE_PER_SEC 16384
#define SG_RECENT_HASH_MUL 0x9E3779B1u /* Fibonacci hashing */

struct sg_recent_source {
	__u8 addr[16]; /* IPv4 in the first 4 bytes, rest zero */
	__u64 count; /* 0: empty way */
	__u64 first_seen_ns; /* CLOCK_MONOTONIC_COARSE */
	__u64 last_seen_ns;
	__u32 rule_id; /* the rule that refused it last */
	__u16 last_port;
	__u8 family; /* 4 or 6 */
	__u8 last_verdict; /* enum sg_verdict */
};

struct sg_recent_set {
	struct sg_recent_source way[SG_RECENT_WAYS];
};

/* events ring buffer: one record per refused SYN, within the rate budget. */
struct sg_event {
	__u64 ts_ns; /* bpf_ktime_get_coarse_ns() */
	__u8 addr[16]; /* source; IPv4 in the first 4 bytes */
	__u32 rule_id;
	__u32 ifindex;
	__u16 dport;
	__u8 family; /* 4 or 6 */
	__u8 verdict; /* enum sg_verdict */
	__u8 reason; /* enum sg_reason */
	__u8 judged_as; /* enum sg_judged_as */
	__u8 pad[2];
};

/* cpu_state[0], per CPU: the clock read once per tick, the one-second
 * window of the ring buffer's event budget and of the budgets of recorded
 * sources, and the quiet path's state and counts. What a refusal on the quiet
 * path touches comes first, within 40 bytes. */
struct sg_cpu_state {
	__u64 quiet_jiffies; /* the tick in which a default-rule refusal found
			      * both budgets spent */
	__u64 sent; /* events sent in this one-second window */
	__u64 suppressed; /* events not sent, ever (monotonic) */
	/* Default-rule SYNs dropped on the quiet path, counted here alone:
	 * userspace adds them to rule 0's refusals, to the (drop, default)
	 * packet counter and to the sources not recorded. */
	__u64 quiet_packets;
	__u64 quiet_bytes;
	__u64 range_quiet_jiffies; /* the same, for the refusal of a range */
	__u64 default_skipped; /* default-rule refusals not recorded, ever,
				* beside quiet_packets */
	__u64 range_skipped; /* range refusals not recorded, ever */
	__u64 tick_jiffies; /* jiffies when tick_ns was read */
	__u64 tick_ns; /* bpf_ktime_get_coarse_ns() at that tick (never
			* less than the last reading), plus one per reading
			* since (coarse_now) */
	__u64 window_start_ns;
	__u64 default_noted; /* default-rule sources recorded in this window */
	__u64 range_noted; /* range sources recorded in this window */
};

#endif /* SMTPGATE_ABI_H */
