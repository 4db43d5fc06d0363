// smtpgatectl: a thin command line over the smtpgate library. Reads work
// whether or not smtpgated runs; changes take the pin-dir lock.
// Exit codes: 0 ok, 1 error (one line on stderr), 2 usage.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "cli.hpp"
#include "command.hpp"
#include "log.hpp"

using namespace smtpgate;
using namespace smtpgate::ctl;

namespace {

// Every command, in the order --help lists them.
CommandTable<Globals> commands() {
  return {status_command(),  ranges_command(), stats_command(), top_command(),   drops_command(),
          explain_command(), action_command(), feed_command(),  detach_command()};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"smtpgatectl: control and explain the smtpgate XDP port-25 gate"};
  app.require_subcommand(1);
  // Options of a command also work after its subcommands ("feed sync
  // --feed-url URL", "stats -j"); subcommands made below inherit this.
  app.fallthrough();
  Globals globals;
  app.add_option("--pin-dir", globals.paths.pin_dir, "Where the gate's maps are pinned")->capture_default_str();
  app.add_option("--state-dir", globals.paths.state_dir, "Where the gate's state is kept")->capture_default_str();
  app.add_flag("-j,--json", globals.as_json, "Print JSON (documented schema) instead of text");
  app.add_flag("-v,--verbose", globals.verbose, "More logging; -vv includes libbpf and libxdp");
  Run run = add_commands(app, commands(), globals);

  if (auto code = parse_command_line(app, argc, argv)) return *code;

  init_logging(globals.verbose);
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << "smtpgatectl: " << e.what() << "\n";
    return kExitError;
  }
}
