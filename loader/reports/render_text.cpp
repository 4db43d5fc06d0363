#include "render_text.hpp"

#include <sstream>

#include <fmt/format.h>

#include "feed_status.hpp"
#include "feed_sync.hpp"

namespace smtpgate {

using nlohmann::json;

std::string json_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.is_null() ? "-" : v.dump(); }

std::string render_feed_status(const json& j) {
  std::ostringstream o;
  auto when = [](const json& t) { return time_or_never(t.is_number() ? t.get<int64_t>() : 0); };
  if (j.contains("settings")) {
    const json& s = j["settings"];
    o << "settings:   " << json_text(s["instance"]) << " from " << json_text(s["url"]) << " (" << json_text(s["source"])
      << (s["enabled"].get<bool>() ? "" : "; the feed is off") << ")\n";
  }
  const json& a = j.value("applied", json(nullptr));
  if (a.is_null()) {
    o << "applied:    none (no feed version applied yet)\n";
  } else {
    o << "instance:   " << json_text(a.value("instance", json(nullptr))) << "\n";
    o << "applied:    "
      << (a.value("version", std::string()).empty() ? std::string("unversioned") : json_text(a["version"])) << " from "
      << json_text(a.value("source", json(nullptr))) << ", " << a.value("ranges", json::array()).size()
      << " port-25 ranges\n";
  }
  o << "latest:     "
    << (j.value("latest_version", std::string()).empty() ? std::string("-") : json_text(j["latest_version"]))
    << (j.value("stale", false) ? "  (your allowlist is stale: run smtpgatectl feed sync)" : "") << "\n";
  o << "last check: " << when(j.value("last_check", json(0))) << ", next " << when(j.value("next_check", json(0)))
    << "\n";
  std::string err = j.value("last_error", std::string());
  o << "last error: " << (err.empty() ? std::string("none") : err) << "\n";
  for (const auto& i : j.value("other_instances", json::array()))
    o << fmt::format(
        "watched:    {} {} ({} port-25 ranges, origin feed-other; last check {}{})\n", json_text(i["instance"]),
        i["version"].is_null() ? std::string("not fetched yet") : json_text(i["version"]), i["ranges"].get<size_t>(),
        when(i["last_check"]), i["last_error"].is_null() ? std::string() : ", error: " + json_text(i["last_error"]));
  return o.str();
}

std::string render_status(const json& j) {
  std::ostringstream o;
  o << "gate:       "
    << (j["loaded"].get<bool>() ? "loaded (maps pinned at " + json_text(j["pin_dir"]) + ")"
                                : "not loaded (nothing pinned at " + json_text(j["pin_dir"]) + ")")
    << "\n";
  o << "action:     " << json_text(j["action"]) << "\n";
  if (!j["feed"]["applied"].is_null())
    o << "feed:       " << json_text(j["feed"]["applied"]["instance"]) << " "
      << (j["feed"]["applied"]["version"].is_null() ? std::string("")
                                                    : json_text(j["feed"]["applied"]["version"]) + " ")
      << "(" << json_text(j["feed"]["applied"]["source"]) << ")\n";
  if (!j["feed"]["last_error"].is_null()) o << "feed error: " << json_text(j["feed"]["last_error"]) << "\n";
  if (j.contains("ports")) {
    std::string ports;
    for (const auto& p : j["ports"]) ports += (ports.empty() ? "" : ",") + p.dump();
    o << "ports:      " << ports << "\n";
  }
  if (j["interfaces"].empty()) o << "interfaces: none attached\n";
  for (const auto& i : j["interfaces"])
    o << fmt::format("interface:  {} ({} mode, program id {}{}{})\n", json_text(i["name"]), json_text(i["mode"]),
                     i["prog_id"].get<uint32_t>(), i["dispatcher"].get<bool>() ? ", via libxdp dispatcher" : "",
                     i["uses_pinned_maps"].get<bool>() ? "" : ", NOT using the pinned maps");
  if (j.contains("unguarded_tunnels"))
    for (const auto& t : j["unguarded_tunnels"]) o << "warning:    " << json_text(t["advice"]) << "\n";
  const json& by = j["drops"]["recorded_by"];
  o << "drops:      "
    << (by.is_null() ? std::string("not recorded (no process reads refused SYNs; smtpgated does while it runs)")
        : json_text(by["command"]) == "smtpgated"
            ? "recorded by smtpgated (pid " + by["pid"].dump() + ")"
            : "read by " + json_text(by["command"]) + " (pid " + by["pid"].dump() + "), not by smtpgated")
    << "\n";
  o << "ranges:     " << j["ranges"]["total"].get<size_t>() << "\n";
  for (const auto& [origin, k] : j["ranges"]["by_origin"].items())
    o << fmt::format("  {:<13} admit {:>5}  deny {:>5}  watch {:>5}\n", origin, k["admit"].get<int>(),
                     k["deny"].get<int>(), k["watch"].get<int>());
  return o.str();
}

std::string render_ranges(const json& j) {
  std::ostringstream o;
  o << fmt::format("{:<6} {:<28} {:<8} {:<13} {}\n", "RULE", "RANGE", "KIND", "ORIGIN", "NOTE");
  for (const auto& r : j["ranges"])
    o << fmt::format("{:<6} {:<28} {:<8} {:<13} {}\n", json_text(r["rule_id"]), json_text(r["range"]),
                     json_text(r["kind"]), json_text(r["origin"]), json_text(r["note"]));
  return o.str();
}

std::string render_stats(const json& j) {
  std::ostringstream o;
  o << fmt::format("{:<13} {:>6} {:>12} {:>12}\n", "ORIGIN", "RANGES", "ADMITTED", "REFUSED");
  for (const auto& [origin, c] : j["by_origin"].items())
    o << fmt::format("{:<13} {:>6} {:>12} {:>12}\n", origin, c["ranges"].get<uint64_t>(),
                     c["admit_packets"].get<uint64_t>(), c["refuse_packets"].get<uint64_t>());
  o << "\n";
  o << fmt::format("{:<6} {:<28} {:<8} {:<13} {:>12} {:>12}\n", "RULE", "RANGE", "KIND", "ORIGIN", "ADMITTED",
                   "REFUSED");
  auto row = [&](const json& r) {
    o << fmt::format("{:<6} {:<28} {:<8} {:<13} {:>12} {:>12}\n", json_text(r["rule_id"]), json_text(r["range"]),
                     json_text(r["kind"]), json_text(r["origin"]), r["counters"]["admit_packets"].get<uint64_t>(),
                     r["counters"]["refuse_packets"].get<uint64_t>());
  };
  for (const auto& r : j["rules"]) row(r);
  row(j["default_rule"]);
  o << "\nverdicts (action " << json_text(j["action"]) << "):";
  for (const auto& [name, c] : j["verdicts"].items()) o << " " << name << "=" << c["packets"].get<uint64_t>();
  o << "\nreasons:";
  for (const auto& [name, c] : j["reasons"].items())
    if (c["packets"].get<uint64_t>()) o << " " << name << "=" << c["packets"].get<uint64_t>();
  o << "\n";
  return o.str();
}

std::string render_explain(const json& j) {
  std::ostringstream o;
  const json& r = j["rule"];
  o << "address:  " << json_text(j["address"]) << "\n";
  o << "verdict:  " << json_text(j["verdict"]) << " (a SYN to port";
  for (const auto& p : j["ports"]) o << " " << p.get<int>();
  o << " from this address, now)\n";
  o << "why:      " << json_text(j["why"]) << "\n";
  o << "rule:     "
    << fmt::format("{} {} {} (origin {}{}{})", json_text(r["rule_id"]), json_text(r["range"]), json_text(r["kind"]),
                   json_text(r["origin"]), r["note"].get<std::string>().empty() ? "" : ": ", json_text(r["note"]))
    << "\n";
  o << "counters: "
    << fmt::format("admitted {} packets, refused {} packets", r["counters"]["admit_packets"].get<uint64_t>(),
                   r["counters"]["refuse_packets"].get<uint64_t>())
    << " (whole range)\n";
  if (!j["eop_code"].is_null()) o << "sender:   EOP would report " << json_text(j["eop_code"]) << "\n";
  if (j["last_refused"].is_null())
    o << "refused:  not recently (not in the recently-refused table)\n";
  else
    o << fmt::format("refused:  {} times, first {}, last {} (port {}, {})\n",
                     j["last_refused"]["count"].get<uint64_t>(), json_text(j["last_refused"]["first_seen"]),
                     json_text(j["last_refused"]["last_seen"]), j["last_refused"]["port"].get<int>(),
                     json_text(j["last_refused"]["verdict"]));
  for (const auto& l : j["listed_in"])
    o << fmt::format("listed:   {} {} (origin {}{}{})\n", json_text(l["range"]), json_text(l["kind"]),
                     json_text(l["origin"]), l["note"].get<std::string>().empty() ? "" : ": ", json_text(l["note"]));
  const json& f = j["feed"];
  if (!f["instance"].is_null())
    o << fmt::format("feed:     {} {} applied{}; {} in it\n", json_text(f["instance"]),
                     f["applied_version"].is_null() ? std::string("unversioned") : json_text(f["applied_version"]),
                     f["stale"].get<bool>() ? ", " + json_text(f["latest_version"]) + " announced" : std::string(),
                     f["in_applied"].get<bool>() ? "address" : "address not");
  if (!j.value("feed_gap", json(nullptr)).is_null())
    o << "feed gap: EOP host " << json_text(j["feed_gap"]["name"])
      << " (PTR confirmed forward), not in the published set\n";
  for (const auto& a : j["advice"]) o << "advice:   " << json_text(a) << "\n";
  return o.str();
}

std::string render_top(const json& j) {
  std::ostringstream o;
  o << fmt::format("{:<28} {:>7} {:<20} {:<20} {:<8} {:<24} {}\n", "SOURCE", "COUNT", "FIRST SEEN", "LAST SEEN",
                   "VERDICT", "RANGE", "ORIGIN");
  for (const auto& r : j["sources"])
    o << fmt::format("{:<28} {:>7} {:<20} {:<20} {:<8} {:<24} {}{}\n",
                     json_text(r["source"]) + (r["microsoft"].get<bool>() ? " *" : ""), r["count"].get<uint64_t>(),
                     json_text(r["first_seen"]), json_text(r["last_seen"]), json_text(r["verdict"]),
                     json_text(r["range"]), json_text(r["origin"]),
                     r["port"].get<int>() == 25 ? "" : " (port " + r["port"].dump() + ")")
      << (r.value("feed_gap", json(nullptr)).is_null()
              ? std::string()
              : "  FEED GAP: EOP host " + json_text(r["feed_gap"]["name"]) + ", not in the published set\n");
  if (j["sources"].empty())
    o << "no source turned away recently" << (j["origin"].is_null() ? "" : " with origin " + json_text(j["origin"]))
      << "\n";
  else
    o << "(* Microsoft's: a feed range decides or lists it; " << j["sources"].size() << " of "
      << j["sources_known"].get<size_t>() << " sources shown)\n";
  return o.str();
}
}  // namespace smtpgate
