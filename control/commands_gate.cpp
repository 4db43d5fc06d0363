// The gate itself: action and detach.
#include <iostream>
#include <string>

#include "command.hpp"
#include "gate.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "report.hpp"

namespace smtpgate::ctl {
namespace {

struct ActionOptions {
  std::string action;
};

void action_options(CLI::App& cmd, ActionOptions& o) {
  cmd.add_option("ACTION", o.action, "drop (EOP: 4.4.315), reject (EOP: 4.4.316) or monitor")
      ->required()
      ->check(CLI::IsMember({"drop", "reject", "monitor"}));
}

int run_action(const Globals& g, const ActionOptions& o) {
  Action a = parse_action(o.action);
  set_action(g.paths, a);
  if (!g.as_json) std::cout << "action " << o.action << ": refused senders see " << eop_code_for(a) << "\n";
  return kExitOk;
}

struct DetachOptions {
  std::string ifname;
};

void detach_options(CLI::App& cmd, DetachOptions& o) { cmd.add_option("IF", o.ifname, "Interface")->required(); }

int run_detach(const Globals& g, const DetachOptions& o) {
  if (!detach(o.ifname)) {
    std::cerr << "smtpgatectl: no smtpgate program is attached to " << o.ifname << "\n";
    return kExitError;
  }
  if (!g.as_json) std::cout << "detached from " << o.ifname << " (maps stay pinned at " << g.paths.pin_dir << ")\n";
  return kExitOk;
}

}  // namespace

Command<Globals> action_command() {
  return command("action", "Set what happens to refused SYNs: drop, reject or monitor", action_options, run_action);
}

Command<Globals> detach_command() {
  return command("detach", "Remove the gate from an interface (other XDP programs stay)", detach_options, run_detach);
}

}  // namespace smtpgate::ctl
