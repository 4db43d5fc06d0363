// smtpgatectl's command table: each command is a name, a help line and a
// define function that adds its options to its CLI11 subcommand and returns
// what runs it. A group (ranges, feed) is a command whose define adds a table
// of subcommands. main.cpp lists the commands in the order --help shows them.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "state.hpp"

namespace smtpgate::ctl {

/// The options every command takes (given before or after it).
struct Globals {
  Paths paths;
  bool as_json = false;
  int verbose = 0;
};

/// Runs the command the command line chose; returns its exit code.
using Run = std::function<int()>;

/// One command of a table whose commands see `Scope` (Globals, or what a
/// group's own options add to it).
template <class Scope>
struct Command {
  const char* name;
  const char* help;
  std::function<Run(CLI::App& cmd, const Scope& scope)> define;
};

template <class Scope>
using CommandTable = std::vector<Command<Scope>>;

/// A command with options: `add_options` adds them to its subcommand,
/// filling an Options of its own that `run` gets once the line is parsed.
template <class Scope, class Options>
Command<Scope> command(const char* name, const char* help, void (*add_options)(CLI::App&, Options&),
                       int (*run)(const Scope&, const Options&)) {
  return {name, help, [add_options, run](CLI::App& cmd, const Scope& scope) -> Run {
            auto options = std::make_shared<Options>();
            add_options(cmd, *options);
            return [&scope, options, run] { return run(scope, *options); };
          }};
}

/// A command without options of its own.
template <class Scope>
Command<Scope> command(const char* name, const char* help, int (*run)(const Scope&)) {
  return {name, help, [run](CLI::App&, const Scope& scope) -> Run { return [&scope, run] { return run(scope); }; }};
}

/// Adds every command of `table` to `parent`, in order; the returned Run
/// runs the one the command line chose.
template <class Scope>
Run add_commands(CLI::App& parent, const CommandTable<Scope>& table, const Scope& scope) {
  std::vector<std::pair<CLI::App*, Run>> runs;
  for (const auto& c : table) {
    CLI::App* cmd = parent.add_subcommand(c.name, c.help);
    runs.emplace_back(cmd, c.define(*cmd, scope));
  }
  return [runs] {
    for (const auto& [cmd, run] : runs)
      if (*cmd) return run();
    return kExitUsage;  // not reached: the parse requires one subcommand
  };
}

/// A group: exactly one of `table`'s commands must follow its name.
template <class Scope>
Command<Scope> group(const char* name, const char* help, CommandTable<Scope> (*table)()) {
  return {name, help, [table](CLI::App& cmd, const Scope& scope) -> Run {
            cmd.require_subcommand(1);
            return add_commands(cmd, table(), scope);
          }};
}

/// Prints `j` as JSON (with --json) or as `render` makes it text.
void print(const nlohmann::json& j, bool as_json, std::string (*render)(const nlohmann::json&));

// The commands, by subject (commands_*.cpp).
Command<Globals> status_command();
Command<Globals> stats_command();
Command<Globals> top_command();
Command<Globals> drops_command();
Command<Globals> explain_command();
Command<Globals> ranges_command();
Command<Globals> feed_command();
Command<Globals> action_command();
Command<Globals> detach_command();

}  // namespace smtpgate::ctl
