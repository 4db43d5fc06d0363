#include "differential.hpp"

#include <arpa/inet.h>
#include <linux/bpf.h>

#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "linux_receive.hpp"
#include "packet_gen.hpp"
#include "ruleset.hpp"
#include "smtpgate_abi.h"
#include "xdp_runner.hpp"

namespace sgref {

namespace {

using smtpgate::GateMaps;

std::vector<uint32_t> rule_ids(const GateSetup& s) {
  std::set<uint32_t> ids{SG_RULE_DEFAULT};
  for (const auto& p : s.prefixes) ids.insert(p.rule_id);
  return {ids.begin(), ids.end()};
}

// The program's outcome for one frame, from the counters it moved.
Outcome observe_on(sgtest::XdpGate& gate, const std::vector<uint8_t>& frame, const GateSetup& s) {
  GateMaps& m = gate.maps();
  auto ids = rule_ids(s);
  auto v0 = m.verdict_counters();
  auto r0 = m.reason_counters();
  std::vector<sg_rule_counters> c0;
  for (uint32_t id : ids) c0.push_back(m.rule_counters(id));
  sgtest::RunResult res = gate.run(frame);
  auto v1 = m.verdict_counters();
  auto r1 = m.reason_counters();
  Outcome o;
  o.xdp_action = res.action;
  o.frame = res.out;
  o.verdict = o.reason = UINT32_MAX;
  for (uint32_t v = 0; v < SG_VERDICT_MAX; v++)
    if (v1[v].packets != v0[v].packets) o.verdict = v1[v].packets - v0[v].packets == 1 ? v : UINT32_MAX - 1;
  for (uint32_t r = 0; r < SG_REASON_MAX; r++)
    if (r1[r].packets != r0[r].packets) o.reason = r1[r].packets - r0[r].packets == 1 ? r : UINT32_MAX - 1;
  for (size_t i = 0; i < ids.size(); i++) {
    sg_rule_counters c1 = m.rule_counters(ids[i]);
    uint64_t admitted = c1.admit_packets - c0[i].admit_packets, refused = c1.refuse_packets - c0[i].refuse_packets;
    if (admitted + refused == 0) continue;
    bool right_column = (admitted == 1) == (o.verdict == SG_VERDICT_ADMIT) && admitted + refused == 1;
    o.judged = true;
    o.rule_id = right_column && !o.rule_id ? ids[i] : UINT32_MAX;
  }
  return o;
}

std::string first_difference(const Outcome& want, const Outcome& got) {
  if (want.xdp_action != got.xdp_action) return "action";
  if (want.frame != got.frame) return "frame";
  if (want.verdict != got.verdict) return "verdict";
  if (want.reason != got.reason) return "reason";
  if (want.judged != got.judged || want.rule_id != got.rule_id) return "rule";
  return "";
}

std::string hex(const std::vector<uint8_t>& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (uint8_t x : b) {
    s += d[x >> 4];
    s += d[x & 15];
  }
  return s;
}

}  // namespace

Differential::Differential() : gate_(std::make_unique<sgtest::XdpGate>()) {}
Differential::Differential(uint32_t table_chunks) {
  smtpgate::ProgramOptions o;
  o.table_chunks = table_chunks;
  gate_ = std::make_unique<sgtest::XdpGate>(o);
}
Differential::~Differential() = default;

void Differential::apply(GateSetup& s) {
  gate_->maps().set_config(smtpgate::GateConfig{s.refusal == Refusal::Drop     ? smtpgate::Action::Drop
                                                : s.refusal == Refusal::Reject ? smtpgate::Action::Reject
                                                                               : smtpgate::Action::Monitor,
                                                s.ports, 0});
  applied_ = s;
  if (!s.has_allowlist) return;
  auto cidr = [](const Prefix& p) {
    return smtpgate::Cidr::from_bytes(p.family == 4 ? smtpgate::Family::V4 : smtpgate::Family::V6, p.addr.data(),
                                      p.len);
  };
  auto kind = [](Kind k) {
    return k == Kind::Admit  ? smtpgate::RuleKind::Admit
           : k == Kind::Deny ? smtpgate::RuleKind::Deny
                             : smtpgate::RuleKind::Watch;
  };
  std::vector<smtpgate::TrieEntry> entries;
  if (s.compiled) {
    std::vector<smtpgate::DesiredRange> desired;
    for (const auto& p : s.prefixes) desired.push_back({cidr(p), kind(p.kind), smtpgate::origin::kOperator, ""});
    entries = smtpgate::compile_rules(desired, {}, gate_->maps().max_rules()).entries;
    // The reference decides which prefix wins; the compile says its id.
    for (auto& p : s.prefixes) {
      p.rule_id = 0;
      for (const auto& e : entries)
        if (e.prefix == cidr(p)) p.rule_id = e.rule_id;
    }
  } else {
    for (const auto& p : s.prefixes) entries.push_back(smtpgate::TrieEntry{cidr(p), p.rule_id, kind(p.kind)});
  }
  gate_->maps().publish(entries);
  applied_ = s;
}

RunStats Differential::run(uint64_t seed, uint64_t packets, uint64_t per_setup, size_t max_reported) {
  constexpr size_t kBatch = 256;
  Generator gen(seed);
  RunStats st;
  bool first = !gate_->maps().has_allowlist();
  auto report = [&](const Case& c, const Outcome& got, std::string what) {
    if (st.disagreements.size() < max_reported)
      st.disagreements.push_back({c, got, std::move(what), disagreement_kind(c.frame, c.setup, got)});
  };
  while (st.packets < packets) {
    GateSetup s = gen.setup();
    // A fresh gate has no allowlist: the first setup runs without one.
    s.has_allowlist = !first;
    first = false;
    apply(s);
    st.setups++;
    uint64_t end = std::min(packets, st.packets + per_setup);
    auto ids = rule_ids(s);
    while (st.packets < end) {
      GateMaps& m = gate_->maps();
      auto v0 = m.verdict_counters();
      auto r0 = m.reason_counters();
      std::map<uint32_t, sg_rule_counters> c0, want_rules;
      for (uint32_t id : ids) c0[id] = m.rule_counters(id);
      std::array<sg_counter, SG_VERDICT_MAX> want_v{};
      std::array<sg_counter, SG_REASON_MAX> want_r{};
      std::vector<Case> batch;
      bool action_mismatch = false;
      while (batch.size() < kBatch && st.packets < end) {
        Case c{s, gen.packet(s), {}, "seed " + std::to_string(seed) + " packet " + std::to_string(st.packets)};
        c.expected = classify(c.frame, s);
        LinuxView linux = linux_receive(c.frame, s.ports);
        st.linux_guarded += linux.guarded_syn();
        if (bypasses(linux, s, c.expected)) {
          st.spec_bypasses++;
          if (st.spec_bypass_cases.size() < max_reported) {
            st.spec_bypass_cases.push_back(c);
            st.spec_bypass_cases.back().note += " (Linux: " + linux.why + ")";
          }
        }
        st.packets++;
        st.by_verdict[c.expected.verdict]++;
        st.by_reason[c.expected.reason]++;
        st.judged += c.expected.judged;
        sgtest::RunResult res = gate_->run(c.frame);
        if (res.action != c.expected.xdp_action || res.out != c.expected.frame) action_mismatch = true;
        want_v[c.expected.verdict].packets++;
        want_v[c.expected.verdict].bytes += c.frame.size();
        want_r[c.expected.reason].packets++;
        want_r[c.expected.reason].bytes += c.frame.size();
        if (c.expected.judged) {
          auto& w = want_rules[c.expected.rule_id];
          (c.expected.verdict == SG_VERDICT_ADMIT ? w.admit_packets : w.refuse_packets)++;
          (c.expected.verdict == SG_VERDICT_ADMIT ? w.admit_bytes : w.refuse_bytes) += c.frame.size();
        }
        batch.push_back(std::move(c));
      }
      auto v1 = m.verdict_counters();
      auto r1 = m.reason_counters();
      bool counters_ok = true;
      for (uint32_t v = 0; v < SG_VERDICT_MAX; v++)
        counters_ok &=
            v1[v].packets - v0[v].packets == want_v[v].packets && v1[v].bytes - v0[v].bytes == want_v[v].bytes;
      for (uint32_t r = 0; r < SG_REASON_MAX; r++)
        counters_ok &=
            r1[r].packets - r0[r].packets == want_r[r].packets && r1[r].bytes - r0[r].bytes == want_r[r].bytes;
      for (uint32_t id : ids) {
        sg_rule_counters c1 = m.rule_counters(id), w = want_rules[id];
        counters_ok &= c1.admit_packets - c0[id].admit_packets == w.admit_packets &&
                       c1.admit_bytes - c0[id].admit_bytes == w.admit_bytes &&
                       c1.refuse_packets - c0[id].refuse_packets == w.refuse_packets &&
                       c1.refuse_bytes - c0[id].refuse_bytes == w.refuse_bytes;
      }
      if (counters_ok && !action_mismatch) continue;
      // Something in this batch differs: replay it packet by packet.
      for (const Case& c : batch) {
        Outcome got = observe_on(*gate_, c.frame, c.setup);
        std::string what = first_difference(c.expected, got);
        if (!what.empty()) report(c, got, what);
      }
      if (st.disagreements.empty()) report(batch.front(), Outcome{}, "counters of a batch (not reproduced singly)");
    }
  }
  return st;
}

Outcome Differential::observe(Case& c) {
  if (applied_ != c.setup) {
    if (!c.setup.has_allowlist && gate_->maps().has_allowlist()) gate_ = std::make_unique<sgtest::XdpGate>();
    apply(c.setup);
  }
  return observe_on(*gate_, c.frame, c.setup);
}

std::string to_text(const Case& c) {
  std::ostringstream o;
  o << "# " << c.note << "\n";
  o << "refusal " << refusal_name(c.setup.refusal) << "\n";
  o << "ports";
  for (uint16_t p : c.setup.ports) o << " " << p;
  o << "\nallowlist " << (c.setup.has_allowlist ? "yes" : "no") << "\n";
  if (c.setup.compiled) o << "compiled yes\n";
  for (const auto& p : c.setup.prefixes)
    o << "prefix " << prefix_text(p) << " " << p.rule_id << " " << kind_name(p.kind) << "\n";
  o << "frame " << hex(c.frame) << "\n";
  o << "# " << describe(c.expected) << "\n";
  o << "expect " << c.expected.xdp_action << " " << c.expected.verdict << " " << c.expected.reason << " "
    << (c.expected.judged ? std::to_string(c.expected.rule_id) : "-") << "\n";
  return o.str();
}

Case from_text(const std::string& text, const std::string& name, bool expect_optional) {
  Case c;
  c.note = name;
  c.setup.ports.clear();
  std::istringstream in(text);
  std::string line;
  unsigned n = 0;
  bool have_frame = false, have_expect = false;
  auto fail = [&](const std::string& why) { throw std::runtime_error(name + ":" + std::to_string(n) + ": " + why); };
  while (std::getline(in, line)) {
    n++;
    if (line.rfind("# ", 0) == 0 && c.note == name && n == 1) c.note = line.substr(2);
    if (line.empty() || line[0] == '#') continue;
    std::istringstream l(line);
    std::string key;
    l >> key;
    if (key == "refusal") {
      std::string w;
      l >> w;
      if (w == "drop")
        c.setup.refusal = Refusal::Drop;
      else if (w == "reject")
        c.setup.refusal = Refusal::Reject;
      else if (w == "monitor")
        c.setup.refusal = Refusal::Monitor;
      else
        fail("refusal is drop, reject or monitor");
    } else if (key == "ports") {
      unsigned p;
      while (l >> p) c.setup.ports.push_back(static_cast<uint16_t>(p));
    } else if (key == "allowlist") {
      std::string w;
      l >> w;
      c.setup.has_allowlist = w == "yes";
    } else if (key == "compiled") {
      std::string w;
      l >> w;
      c.setup.compiled = w == "yes";
    } else if (key == "prefix") {
      std::string cidr, kind;
      Prefix p;
      l >> cidr >> p.rule_id >> kind;
      auto slash = cidr.find('/');
      if (slash == std::string::npos) fail("prefix needs /len");
      std::string addr = cidr.substr(0, slash);
      p.family = addr.find(':') == std::string::npos ? 4 : 6;
      if (inet_pton(p.family == 4 ? AF_INET : AF_INET6, addr.c_str(), p.addr.data()) != 1) fail("bad address " + addr);
      p.len = static_cast<unsigned>(std::stoul(cidr.substr(slash + 1)));
      p.kind = kind == "admit"   ? Kind::Admit
               : kind == "deny"  ? Kind::Deny
               : kind == "watch" ? Kind::Watch
                                 : (fail("bad kind"), Kind::Admit);
      c.setup.prefixes.push_back(p);
    } else if (key == "frame") {
      std::string h;
      l >> h;
      if (h.size() % 2) fail("odd hex length");
      for (size_t i = 0; i < h.size(); i += 2)
        c.frame.push_back(static_cast<uint8_t>(std::stoul(h.substr(i, 2), nullptr, 16)));
      have_frame = true;
    } else if (key == "expect") {
      std::string rule;
      l >> c.expected.xdp_action >> c.expected.verdict >> c.expected.reason >> rule;
      if (!l) fail("expect ACTION VERDICT REASON RULE|-");
      c.expected.judged = rule != "-";
      c.expected.rule_id = c.expected.judged ? static_cast<uint32_t>(std::stoul(rule)) : 0;
      have_expect = true;
    } else {
      fail("unknown key " + key);
    }
  }
  if (!have_frame || (!have_expect && !expect_optional) || c.setup.ports.empty()) fail("needs ports, frame and expect");
  return c;
}

}  // namespace sgref
