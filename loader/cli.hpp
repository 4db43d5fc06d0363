// What smtpgated and smtpgatectl share about their command lines: the exit
// codes (0 ok, 1 error, 2 usage) and how a parse ends.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>

namespace smtpgate {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

/// Parses argv; returns an exit code when the program should stop now
/// (--help: 0, a usage error: 2, after CLI11 printed it), nothing otherwise.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace smtpgate
