#include "gate.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <map>
#include <set>

#include "error.hpp"
#include "gate_program.hpp"

namespace smtpgate {

namespace {
FileLock lock_pin_dir(const Paths& paths, std::optional<std::chrono::milliseconds> wait) {
  check_private_dir(paths.state_dir, "state_dir");
  ensure_pin_dir(paths.pin_dir);
  FileLock lock(paths.pin_dir, wait);
  check_state_format(paths.state_dir);  // under the lock: one migration at a time
  return lock;
}

// Takes one of the daemon's locks, or names the daemon holding it.
FileLock take_daemon_lock(const std::string& path, const std::string& what, const std::string& dir) {
  std::optional<FileLock> l = FileLock::try_take(path);
  if (l) return std::move(*l);
  std::optional<LockHolder> holder = lock_holder(path);
  std::string pid = holder ? std::to_string(holder->pid) : "PID";
  std::string who = !holder                          ? "another smtpgated (its pid is not visible from here)"
                    : holder->command == "smtpgated" ? "another smtpgated (pid " + pid + ")"
                                                     : describe(holder);
  throw InputError(who + " already runs on " + what + " " + dir +
                   "; one daemon per gate: stop it first (systemctl stop smtpgated, or kill " + pid +
                   "), or give this one a --pin-dir and --state-dir of its own");
}

FileLock lock_daemon_pins(const Paths& paths) {
  ensure_pin_dir(paths.pin_dir);
  // bpffs refuses names with a dot.
  std::string dir = paths.pin_dir + "/daemon_lock";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw SystemError("create " + dir, errno);
  return take_daemon_lock(dir, "pin directory", paths.pin_dir);
}

FileLock lock_daemon_state(const Paths& paths) {
  check_private_dir(paths.state_dir, "state_dir");
  make_dirs(paths.state_dir, 0755);
  return take_daemon_lock(paths.state_dir + "/daemon.lock", "state directory", paths.state_dir);
}
}  // namespace

GateLock::GateLock(const Paths& paths, std::optional<std::chrono::milliseconds> wait)
    : lock_(lock_pin_dir(paths, wait)) {}

DaemonLock::DaemonLock(const Paths& paths) : pins_(lock_daemon_pins(paths)), state_(lock_daemon_state(paths)) {}

PublishResult publish_desired(GateMaps& maps, const std::vector<DesiredRange>& desired,
                              const std::optional<std::vector<TrieEntry>>& current) {
  // Entries compiled against what these maps hold may be patched in; those
  // compiled against another gate's are published in full.
  std::vector<TrieEntry> held = current ? std::vector<TrieEntry>{} : maps.active_entries();
  CompiledRules compiled = compile_rules(desired, current ? *current : held, maps.max_rules());
  for (uint32_t id : compiled.fresh_ids) maps.reset_rule_counters(id);
  maps.publish(compiled.entries, current ? nullptr : &held);
  return PublishResult{compiled.entries.size(), maps.generation()};
}

GateChange::GateChange(const Paths& paths) : before_(DesiredInputs::read(paths.state_dir)) {
  if (GateMaps::pinned_at(paths.pin_dir)) maps_.emplace(GateMaps::open_pinned(paths.pin_dir));
}

std::vector<DesiredRange> GateChange::desired(const DesiredInputs& next) const {
  return desired_ranges(next, ::time(nullptr));
}

std::optional<CompiledRules> GateChange::compile(const std::vector<DesiredRange>& desired) {
  if (!maps_) return std::nullopt;
  compiled_against_ = maps_->active_entries();
  return compile_rules(desired, compiled_against_, maps_->max_rules());
}

void GateChange::publish_compiled(const CompiledRules& compiled, std::vector<DesiredRange> desired) {
  for (uint32_t id : compiled.fresh_ids) maps_->reset_rule_counters(id);
  maps_->publish(compiled.entries, &compiled_against_);
  published_ = std::move(desired);
}

void GateChange::commit(const DesiredInputs& next, const std::function<void()>& write,
                        const std::function<void()>& restore) {
  std::vector<DesiredRange> d = desired(next);
  std::optional<CompiledRules> compiled = compile(d);
  write();
  if (!compiled) return;
  try {
    publish_compiled(*compiled, std::move(d));
  } catch (...) {
    restore();
    throw;
  }
}

void GateChange::publish(const DesiredInputs& next) {
  if (!maps_) return;
  std::vector<DesiredRange> d = desired(next);
  auto same = [](const DesiredRange& a, const DesiredRange& b) { return a.cidr == b.cidr && a.kind == b.kind; };
  if (published_ && std::equal(d.begin(), d.end(), published_->begin(), published_->end(), same)) return;
  CompiledRules compiled = *compile(d);
  publish_compiled(compiled, std::move(d));
}

bool republish_if_pinned(const Paths& paths) {
  GateChange change(paths);
  if (!change.pinned()) return false;
  change.publish(change.before());
  return true;
}

namespace {
// Writes the new operator ranges and publishes them with the rest of the
// state as read; if the publish fails the old file is put back, so state and
// maps never disagree.
void commit_operator_ranges(const Paths& paths, GateChange& change, std::vector<OperatorRange> after) {
  StateStore store(paths.state_dir);
  DesiredInputs next = change.before();
  next.operator_ranges = std::move(after);
  change.commit(
      next, [&] { store.save_operator_ranges(next.operator_ranges); },
      [&] { store.save_operator_ranges(change.before().operator_ranges); });
}
}  // namespace

void add_range(const Paths& paths, const OperatorRange& range, bool allow_reserved) {
  check_not_special(range.cidr, allow_reserved);
  check_comment(range.comment);
  GateLock lock(paths);
  GateChange change(paths);
  auto after = change.before().operator_ranges;
  auto it = std::find_if(after.begin(), after.end(),
                         [&](const OperatorRange& r) { return r.cidr == range.cidr && r.kind == range.kind; });
  if (it != after.end()) {
    it->comment = range.comment;
  } else {
    OperatorRange r = range;
    if (!r.added_unix) r.added_unix = ::time(nullptr);
    after.push_back(r);
  }
  commit_operator_ranges(paths, change, std::move(after));
}

void del_range(const Paths& paths, const Cidr& cidr) {
  GateLock lock(paths);
  GateChange change(paths);
  auto after = change.before().operator_ranges;
  auto gone = std::remove_if(after.begin(), after.end(), [&](const OperatorRange& r) { return r.cidr == cidr; });
  if (gone == after.end()) {
    for (const auto& d : desired_ranges(change.before(), ::time(nullptr)))
      if (d.cidr == cidr)
        throw InputError(cidr.str() + " comes from the feed (" + d.origin +
                         "), not from 'ranges add': it changes with the feed; to refuse it anyway use "
                         "'smtpgatectl ranges add " +
                         cidr.str() + " --deny'");
    throw InputError(cidr.str() + " is not in the operator's ranges: see 'smtpgatectl ranges list'");
  }
  after.erase(gone, after.end());
  commit_operator_ranges(paths, change, std::move(after));
}

size_t import_ranges(const Paths& paths, const std::string& file, RuleKind kind, bool allow_reserved) {
  std::vector<RangeLine> lines = parse_range_file(read_file(file), file);
  for (const auto& l : lines) {
    try {
      check_not_special(l.cidr, allow_reserved);
    } catch (const InputError& e) {
      throw InputError(file + ":" + std::to_string(l.line) + ": " + e.what());
    }
  }
  GateLock lock(paths);
  GateChange change(paths);
  auto after = change.before().operator_ranges;
  size_t added = 0;
  int64_t now = ::time(nullptr);
  // By (range, kind), so a file of a million ranges is not a million scans.
  std::map<std::pair<Cidr, RuleKind>, size_t> index;
  for (size_t i = 0; i < after.size(); i++) index.emplace(std::make_pair(after[i].cidr, after[i].kind), i);
  for (const auto& l : lines) {
    auto [it, fresh] = index.emplace(std::make_pair(l.cidr, kind), after.size());
    if (!fresh) {
      if (!l.comment.empty()) after[it->second].comment = l.comment;
      continue;
    }
    after.push_back(OperatorRange{l.cidr, kind, l.comment, now});
    added++;
  }
  commit_operator_ranges(paths, change, std::move(after));
  return added;
}

void set_action(const Paths& paths, Action action) {
  GateLock lock(paths);
  StateStore store(paths.state_dir);
  RuntimeSettings before = store.runtime();
  RuntimeSettings after = before;
  after.action = action;
  store.save_runtime(after);
  if (GateMaps::pinned_at(paths.pin_dir)) {
    GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
    GateConfig cfg = maps.config();
    if (cfg.ports.empty()) cfg.ports = GateConfig{}.ports;  // maps pinned, daemon not yet configured
    cfg.action = action;
    try {
      maps.set_config(cfg);
    } catch (...) {
      store.save_runtime(before);
      throw;
    }
  }
}

}  // namespace smtpgate
