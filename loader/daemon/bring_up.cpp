#include "bring_up.hpp"

#include <spdlog/spdlog.h>

#include "daemon.hpp"
#include "desired_set.hpp"
#include "error.hpp"
#include "gate.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "links.hpp"
#include "state.hpp"
#include "upgrade.hpp"

namespace smtpgate {

size_t count_admits(const std::vector<DesiredRange>& desired) {
  size_t n = 0;
  for (const auto& d : desired)
    if (d.kind == RuleKind::Admit) n++;
  return n;
}

namespace {

ProgramOptions program_options(const DaemonConfig& cfg) {
  ProgramOptions o;
  o.pin_dir = cfg.paths.pin_dir;
  o.max_rules = cfg.max_rules;
  o.recent_sources = cfg.recent_sources;
  o.table_chunks = cfg.table_chunks;
  return o;
}

// The action to run with: config/flag if given, else the last one chosen with
// smtpgatectl action, else what a running gate has, else drop.
Action choose_action(const DaemonConfig& cfg, const StateStore& store, const std::optional<GateConfig>& running) {
  if (cfg.action) return *cfg.action;
  if (auto rt = store.runtime(); rt.action) return *rt.action;
  if (running) return running->action;
  return Action::Drop;
}

// The allowlist the state directory holds, refused when it admits nothing
// (unless allow_empty): attaching it would refuse all mail.
std::vector<DesiredRange> allowlist_to_publish(const DaemonConfig& cfg, const StateStore& store) {
  std::vector<DesiredRange> desired = desired_ranges(store);
  if (count_admits(desired) == 0 && !cfg.allow_empty)
    throw InputError(
        "refusing to attach with an empty allowlist: it would refuse all mail on port 25; "
        "add ranges (smtpgatectl ranges add, smtpgatectl feed import) or pass --allow-empty");
  return desired;
}

// Writes the gate's configuration (ports, event rate, the action: see
// choose_action; `running` is the configuration of the gate these maps carry
// on) and publishes the allowlist (`current`: see publish_desired).
void configure_and_publish(const DaemonConfig& cfg, const StateStore& store, GateMaps& maps,
                           const std::optional<GateConfig>& running, const std::vector<DesiredRange>& desired,
                           const std::optional<std::vector<TrieEntry>>& current) {
  GateConfig gc;
  gc.action = choose_action(cfg, store, running);
  gc.ports = cfg.ports;
  gc.events_per_sec = cfg.events_per_sec;
  maps.set_config(gc);
  PublishResult pr = publish_desired(maps, desired, current);
  spdlog::info("allowlist published: {} ranges (generation {}), action {}", pr.entries, pr.generation,
               to_string(gc.action));
}

void warn_unguarded_tunnels() {
  for (const auto& t : unguarded_tunnels()) spdlog::warn("{}", tunnel_advice(t));
}

// A running gate whose maps have another layout (another version, or another
// max_rules; `why` says how) is replaced beside itself (upgrade.hpp): the new
// maps carry its configuration and rule ids, then the interfaces switch over.
// Whatever fails leaves the running gate as it was.
void replace_running_gate(const DaemonConfig& cfg, const StateStore& store, const std::vector<DesiredRange>& desired,
                          const std::string& why) {
  try {
    spdlog::warn("the running gate's maps have another layout ({}): replacing it without a gap", why);
    NextGeneration next(program_options(cfg));
    GateMaps maps = next.open();
    configure_and_publish(cfg, store, maps, maps.config(), desired, next.running_allowlist());
    next.switch_over(cfg.interfaces, cfg.mode);
    warn_unguarded_tunnels();
  } catch (const std::exception& e) {
    throw InputError("the running gate was not replaced and runs on as it was: " + std::string(e.what()));
  }
}

// The maps in place: the pinned ones adopted (their configuration carried
// on), or pinned now.
void publish_in_place(const DaemonConfig& cfg, const StateStore& store, const std::vector<DesiredRange>& desired,
                      bool adopted) {
  if (!adopted) GateProgram(program_options(cfg)).load();  // pins the maps; the program goes with it
  GateMaps maps = GateMaps::open_pinned(cfg.paths.pin_dir);
  std::optional<GateConfig> running;
  if (adopted) running = maps.config();
  configure_and_publish(cfg, store, maps, running, desired, std::nullopt);
}

// Each interface runs this version's program on the pinned maps: a running
// program of this version (the same tag) is adopted; another version's code
// (a fix to the parser, say) is swapped atomically for this version's on the
// same maps; where none runs, it is attached.
void attach_interfaces(const DaemonConfig& cfg) {
  std::string ours;
  for (const auto& ifname : cfg.interfaces) {
    AttachedInfo a = query_attached(ifname, cfg.paths.pin_dir);
    if (a.attached && a.uses_pinned_maps) {
      if (ours.empty()) ours = this_build_program_tag(program_options(cfg));
      std::string theirs = program_tag(a.prog_id);
      if (theirs == ours) {
        spdlog::info("{}: adopted the running gate (program id {}, {} mode)", ifname, a.prog_id, a.mode);
        continue;
      }
      XdpMode used = attach(program_options(cfg), ifname, cfg.mode);
      spdlog::warn(
          "{}: the running program (id {}, tag {}) was replaced by this version's (tag {}, {} mode) "
          "on the same maps: its code differs",
          ifname, a.prog_id, theirs, ours, to_string(used));
      continue;
    }
    XdpMode used = attach(program_options(cfg), ifname, cfg.mode);
    spdlog::info("{}: gate attached in {} mode", ifname, to_string(used));
  }
  warn_unguarded_tunnels();
}

}  // namespace

void bring_up(const DaemonConfig& cfg, std::optional<std::chrono::milliseconds> lock_wait) {
  validate_config(cfg);
  if (cfg.interfaces.empty() && !cfg.no_attach)
    throw InputError("no interface to guard: pass --interface IF or set interfaces in smtpgate.toml");
  GateLock lock(cfg.paths, lock_wait);
  StateStore store(cfg.paths.state_dir);
  make_dirs(cfg.paths.state_dir, 0755);
  check_state_format(cfg.paths.state_dir);  // records the format in a new directory
  std::vector<DesiredRange> desired = allowlist_to_publish(cfg, store);

  // Maps first: pinned (or adopted), configured and holding the allowlist
  // before any interface runs the program, so no packet meets an empty gate.
  // With no_attach the interfaces are another loader's: no replacement.
  bool adopted = GateMaps::pinned_at(cfg.paths.pin_dir);
  std::string why = adopted && !cfg.no_attach ? pinned_layout_difference(program_options(cfg)) : "";
  if (!why.empty()) return replace_running_gate(cfg, store, desired, why);
  publish_in_place(cfg, store, desired, adopted);
  if (cfg.no_attach) return;  // the other loader attaches; interfaces are only watched
  attach_interfaces(cfg);
}

}  // namespace smtpgate
