#include "config.hpp"

#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/sysinfo.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <tuple>

#include "error.hpp"
#include "fcrdns.hpp"
#include "feed.hpp"
#include "fsutil.hpp"
#include "http.hpp"
#include "map_names.hpp"
#include "metrics_listen.hpp"

namespace smtpgate {

XdpMode parse_mode(std::string_view word) {
  if (word == "native") return XdpMode::Native;
  if (word == "skb") return XdpMode::Skb;
  throw InputError("unknown XDP mode '" + std::string(word) + "': use native or skb");
}

std::string to_string(XdpMode m) { return m == XdpMode::Native ? "native" : "skb"; }

namespace {

struct Reader {
  const std::string& file;
  std::string where(const std::string& key) const { return file + ": key '" + key + "'"; }

  void check_keys(const toml::table& t, const std::set<std::string>& known, const std::string& prefix) const {
    for (const auto& [k, v] : t) {
      std::string key = prefix + std::string(k.str());
      if (!known.count(std::string(k.str())))
        throw InputError(file + ": unknown key '" + key + "': see smtpgate.toml(5) for the keys");
    }
  }

  template <typename T>
  void get(const toml::table& t, const std::string& key, const std::string& full, T& out) const {
    const toml::node* n = t.get(key);
    if (!n) return;
    if constexpr (std::is_same_v<T, bool>) {
      if (!n->is_boolean()) throw InputError(where(full) + " must be true or false");
      out = n->as_boolean()->get();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!n->is_string()) throw InputError(where(full) + " must be a string");
      out = n->as_string()->get();
    } else if constexpr (std::is_same_v<T, double>) {
      if (n->is_integer())
        out = static_cast<double>(n->as_integer()->get());
      else if (n->is_floating_point())
        out = n->as_floating_point()->get();
      else
        throw InputError(where(full) + " must be a number");
      // TOML has nan and inf: a share or a bound that compares false with
      // everything would turn its check off.
      if (!std::isfinite(out)) throw InputError(where(full) + " must be a finite number");
    } else {
      if (!n->is_integer()) throw InputError(where(full) + " must be a whole number");
      int64_t v = n->as_integer()->get();
      if (v < 0 || v > int64_t(std::numeric_limits<T>::max()))
        throw InputError(where(full) + " is out of range: " + std::to_string(v));
      out = static_cast<T>(v);
    }
  }
};

}  // namespace

namespace {
toml::table parse_toml(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& s = e.source().begin;
    throw InputError(path + ":" + std::to_string(s.line) + ":" + std::to_string(s.column) + ": " +
                     std::string(e.description()));
  }
}

// A word key parsed by parse (mode, action); the error names the file.
template <typename T, typename Parse>
void get_word(const Reader& r, const toml::table& t, const std::string& key, T& out, Parse parse) {
  std::string word;
  r.get(t, key, key, word);
  if (word.empty()) return;
  try {
    out = parse(word);
  } catch (const InputError& e) {
    throw InputError(r.file + ": " + e.what());
  }
}

// The gate's own keys, at the top level.
void read_gate(const Reader& r, const toml::table& root, DaemonConfig& cfg) {
  if (const toml::node* n = root.get("interfaces")) {
    if (!n->is_array()) throw InputError(r.where("interfaces") + " must be a list of names, e.g. [\"eth0\"]");
    cfg.interfaces.clear();
    for (const auto& e : *n->as_array()) {
      if (!e.is_string()) throw InputError(r.where("interfaces") + " must hold strings");
      cfg.interfaces.push_back(e.as_string()->get());
    }
  }
  if (const toml::node* n = root.get("ports")) {
    if (!n->is_array()) throw InputError(r.where("ports") + " must be a list, e.g. [25]");
    cfg.ports.clear();
    for (const auto& e : *n->as_array()) {
      if (!e.is_integer() || e.as_integer()->get() < 1 || e.as_integer()->get() > 65535)
        throw InputError(r.where("ports") + " must hold port numbers 1..65535");
      cfg.ports.push_back(static_cast<uint16_t>(e.as_integer()->get()));
    }
  }
  get_word(r, root, "mode", cfg.mode, parse_mode);
  get_word(r, root, "action", cfg.action, parse_action);
  r.get(root, "pin_dir", "pin_dir", cfg.paths.pin_dir);
  r.get(root, "state_dir", "state_dir", cfg.paths.state_dir);
  r.get(root, "allow_empty", "allow_empty", cfg.allow_empty);
  r.get(root, "max_rules", "max_rules", cfg.max_rules);
  r.get(root, "recent_sources", "recent_sources", cfg.recent_sources);
  r.get(root, "table_chunks", "table_chunks", cfg.table_chunks);
  r.get(root, "events_per_sec", "events_per_sec", cfg.events_per_sec);
}

// The table [name] with only the keys known; nullptr when it is absent.
const toml::table* section(const Reader& r, const toml::table& root, const std::string& name,
                           const std::set<std::string>& known) {
  const toml::node* n = root.get(name);
  if (!n) return nullptr;
  if (!n->is_table()) throw InputError(r.where(name) + " must be a table: [" + name + "]");
  r.check_keys(*n->as_table(), known, name + ".");
  return n->as_table();
}

void read_feed_gaps(const Reader& r, const toml::table& root, FeedGapConfig& out) {
  const toml::table* g =
      section(r, root, "feed_gaps",
              {"enabled", "resolver", "lookups_per_minute", "deadline_ms", "admit_confirmed_eop", "admit_days"});
  if (!g) return;
  r.get(*g, "admit_confirmed_eop", "feed_gaps.admit_confirmed_eop", out.admit_confirmed_eop);
  r.get(*g, "admit_days", "feed_gaps.admit_days", out.admit_days);
  r.get(*g, "enabled", "feed_gaps.enabled", out.enabled);
  r.get(*g, "resolver", "feed_gaps.resolver", out.resolver);
  r.get(*g, "lookups_per_minute", "feed_gaps.lookups_per_minute", out.lookups_per_minute);
  r.get(*g, "deadline_ms", "feed_gaps.deadline_ms", out.deadline_ms);
}

void read_feed(const Reader& r, const toml::table& root, FeedConfig& out) {
  const toml::table* f = section(r, root, "feed",
                                 {"enabled", "instance", "url", "interval", "proxy", "ipv6", "min_prefix_v4",
                                  "min_prefix_v6", "max_removal_share", "max_added_ranges", "max_growth_share", "force",
                                  "allow_http", "ca_file", "watch_other_instances", "removal_grace_days"});
  if (!f) return;
  r.get(*f, "enabled", "feed.enabled", out.enabled);
  r.get(*f, "instance", "feed.instance", out.instance);
  r.get(*f, "url", "feed.url", out.url);
  r.get(*f, "interval", "feed.interval", out.interval_s);
  r.get(*f, "proxy", "feed.proxy", out.proxy);
  r.get(*f, "ipv6", "feed.ipv6", out.ipv6);
  r.get(*f, "min_prefix_v4", "feed.min_prefix_v4", out.min_prefix_v4);
  r.get(*f, "min_prefix_v6", "feed.min_prefix_v6", out.min_prefix_v6);
  r.get(*f, "max_removal_share", "feed.max_removal_share", out.max_removal_share);
  r.get(*f, "max_added_ranges", "feed.max_added_ranges", out.max_added_ranges);
  r.get(*f, "max_growth_share", "feed.max_growth_share", out.max_growth_share);
  r.get(*f, "force", "feed.force", out.force);
  r.get(*f, "allow_http", "feed.allow_http", out.allow_http);
  r.get(*f, "ca_file", "feed.ca_file", out.ca_file);
  r.get(*f, "watch_other_instances", "feed.watch_other_instances", out.watch_other_instances);
  r.get(*f, "removal_grace_days", "feed.removal_grace_days", out.removal_grace_days);
}

void read_metrics(const Reader& r, const toml::table& root, MetricsConfig& out) {
  const toml::table* m = section(r, root, "metrics", {"listen", "textfile"});
  if (!m) return;
  r.get(*m, "listen", "metrics.listen", out.listen);
  r.get(*m, "textfile", "metrics.textfile", out.textfile);
}
}  // namespace

void load_config_file(const std::string& path, DaemonConfig& cfg) {
  toml::table root = parse_toml(path);
  Reader r{path};
  r.check_keys(root,
               {"interfaces", "mode", "action", "ports", "pin_dir", "state_dir", "allow_empty", "max_rules",
                "recent_sources", "table_chunks", "events_per_sec", "feed", "feed_gaps", "metrics"},
               "");
  read_gate(r, root, cfg);
  read_feed_gaps(r, root, cfg.feed_gaps);
  read_feed(r, root, cfg.feed);
  read_metrics(r, root, cfg.metrics);
}

void validate_config(const DaemonConfig& cfg) {
  if (cfg.ports.empty() || cfg.ports.size() > SG_MAX_PORTS)
    throw InputError("ports: give 1 to " + std::to_string(SG_MAX_PORTS) + " guarded ports");
  for (uint16_t p : cfg.ports)
    if (p == 0) throw InputError("ports: 0 is not a port; use 1..65535");
  if (cfg.max_rules < 16 || cfg.max_rules > SG_MAX_RULES_LIMIT)
    throw InputError("max_rules must be 16.." + std::to_string(SG_MAX_RULES_LIMIT));
  if (cfg.table_chunks < 16 || cfg.table_chunks > (1u << 24))
    throw InputError("table_chunks must be 16..16777216 (1 KiB each, per address family)");
  if (!(cfg.feed.max_removal_share > 0 && cfg.feed.max_removal_share <= 1))  // NaN fails too
    throw InputError("feed.max_removal_share must be in (0, 1], e.g. 0.5");
  if (cfg.feed.min_prefix_v4 > 32 || cfg.feed.min_prefix_v6 > 128)
    throw InputError("feed.min_prefix_v4 must be 0..32 and feed.min_prefix_v6 0..128");
  if (cfg.feed.interval_s < 60) throw InputError("feed.interval must be at least 60 seconds");
  parse_instance(cfg.feed.instance);  // names the instances when it is none of them
  // Written so that NaN fails too: it compares false with everything.
  if (!(cfg.feed.max_growth_share > 0 && cfg.feed.max_growth_share <= 1000))
    throw InputError("feed.max_growth_share must be a number in (0, 1000], e.g. 0.5 (half again as many addresses)");
  if (cfg.feed_gaps.lookups_per_minute < 1 || cfg.feed_gaps.lookups_per_minute > 600)
    throw InputError("feed_gaps.lookups_per_minute must be 1..600, e.g. 30");
  if (cfg.feed_gaps.admit_confirmed_eop != "off" && cfg.feed_gaps.admit_confirmed_eop != "address" &&
      cfg.feed_gaps.admit_confirmed_eop != "24")
    throw InputError("feed_gaps.admit_confirmed_eop must be \"off\", \"address\" or \"24\" (its /24), not " +
                     quote_input(cfg.feed_gaps.admit_confirmed_eop));
  if (cfg.feed_gaps.admit_days < 1 || cfg.feed_gaps.admit_days > 90)
    throw InputError("feed_gaps.admit_days must be 1..90, e.g. 7");
  if (cfg.feed_gaps.deadline_ms < 100 || cfg.feed_gaps.deadline_ms > 10000)
    throw InputError("feed_gaps.deadline_ms must be 100..10000, e.g. 1500");
  if (!cfg.feed_gaps.resolver.empty()) FcrdnsResolver check(cfg.feed_gaps.resolver, std::chrono::milliseconds(1000));
  if (cfg.feed.removal_grace_days > 365)
    throw InputError("feed.removal_grace_days must be 0..365 (0: a removed range is refused at once), e.g. 30");
  if (cfg.feed.max_added_ranges > 65536) throw InputError("feed.max_added_ranges must be 0..65536, e.g. 8");
  check_fetch_url(cfg.feed.url, cfg.feed.allow_http);
  if (!cfg.feed.ca_file.empty() && !file_exists(cfg.feed.ca_file))
    throw InputError("feed.ca_file " + quote_input(cfg.feed.ca_file) +
                     " does not exist: give the PEM file of the CA that signed the feed server's certificate");
  if (cfg.paths.pin_dir.empty() || cfg.paths.state_dir.empty())
    throw InputError("pin_dir and state_dir must not be empty");
  if (cfg.recent_sources < 16 || cfg.recent_sources > (1u << 24))
    throw InputError("recent_sources must be 16..16777216 (sources per CPU)");
  for (const auto& name : cfg.interfaces)
    if (name.empty() || name.size() >= IF_NAMESIZE || name == "." || name == ".." ||
        name.find_first_of("/: \t\n\v\f\r") != std::string::npos || bad_text_offset(name) != std::string::npos)
      throw InputError("interfaces: " + quote_input(name) + " is not an interface name (1 to " +
                       std::to_string(IF_NAMESIZE - 1) + " bytes, no '/', ':' or white space): see 'ip link'");
  if (!cfg.metrics.listen.empty()) parse_listen_address(cfg.metrics.listen);
  check_private_dir(cfg.paths.state_dir, "state_dir");
  MemoryBudget b = memory_budget(cfg);
  if (b.total() > b.limit()) {
    auto [key, bytes] = *std::max_element(b.by_key.begin(), b.by_key.end(),
                                          [](const auto& x, const auto& y) { return x.second < y.second; });
    throw InputError("this configuration needs up to " + human_bytes(b.total()) + " of memory (" + human_bytes(bytes) +
                     " of it sized by " + key + ", on " + std::to_string(b.cpus) +
                     " CPUs); the limit is half of this machine's " + human_bytes(b.machine) + ": lower " + key);
  }
}

std::string human_bytes(uint64_t n) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = double(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

MemoryBudget memory_budget(const DaemonConfig& cfg) {
  MemoryBudget b;
  int cpus = libbpf_num_possible_cpus();
  b.cpus = cpus > 0 ? unsigned(cpus) : 1;
  ProgramOptions o;
  o.max_rules = cfg.max_rules;
  o.recent_sources = cfg.recent_sources;
  o.table_chunks = cfg.table_chunks;
  b.maps = map_memory(o, b.cpus);
  for (const auto& m : b.maps) (m.grows ? b.maps_grow : b.maps_loaded) += m.bytes;
  // smtpgated: its code, libraries and threads (about 16 MiB resident);
  // the stride tables it compiles for one slot of both families (the IPv6
  // root, chunks, the IPv4 directory and groups); and up to about 1 KiB per range while a
  // publish runs (parsed state, compiled rules: a peak of about 230 bytes
  // per range measured at a million; freed after it).
  uint64_t pool = uint64_t(cfg.table_chunks / 2) * 2 * sizeof(sg_chunk);
  uint64_t ranges = uint64_t(cfg.max_rules) * 1024;
  b.daemon =
      (16u << 20) + pool + ranges + (256 + SG_DIR_CHUNKS + SG_GROUP_CHUNKS + 2 * SG_SUMMARY_CHUNKS) * sizeof(sg_chunk);
  auto map = [&](const std::string& name) {
    for (const auto& m : b.maps)
      if (m.map == name) return m.bytes;
    return uint64_t{0};
  };
  b.by_key = {{"max_rules", map(mapname::rule_counters) + b.maps_grow + ranges},
              {"recent_sources", map(mapname::recent_refused)},
              {"table_chunks", map(mapname::table_v4) + map(mapname::table_v6) + pool}};
  struct sysinfo si {};
  if (::sysinfo(&si) == 0) b.machine = uint64_t(si.totalram) * si.mem_unit;
  return b;
}

std::string describe(const MemoryBudget& b) {
  std::string maps;
  std::vector<MapMemory> sorted = b.maps;
  std::sort(sorted.begin(), sorted.end(), [](const MapMemory& x, const MapMemory& y) { return x.bytes > y.bytes; });
  for (const auto& m : sorted) maps += (maps.empty() ? "" : ", ") + m.map + " " + human_bytes(m.bytes);
  return "memory: up to " + human_bytes(b.total()) + " (kernel maps " + human_bytes(b.maps_loaded) +
         " when loaded, on " + std::to_string(b.cpus) + " CPUs, and up to " + human_bytes(b.maps_grow) +
         " more as the allowlist grows to max_rules; smtpgated up to " + human_bytes(b.daemon) + "); limit " +
         human_bytes(b.limit()) + ", half of this machine's " + human_bytes(b.machine) + "\nmaps: " + maps;
}

void check_reload(const DaemonConfig& running, const DaemonConfig& next) {
  for (auto [key, was, now] : {std::tuple{"pin_dir", running.paths.pin_dir, next.paths.pin_dir},
                               std::tuple{"state_dir", running.paths.state_dir, next.paths.state_dir}})
    if (was != now)
      throw InputError(std::string(key) + " changed from " + was + " to " + now +
                       ": a reload keeps the directories the daemon holds; restart smtpgated to move it");
}

}  // namespace smtpgate
