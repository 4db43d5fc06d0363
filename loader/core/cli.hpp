// What smtpgated and smtpgatectl share about their command lines: the exit
// codes (0 ok, 1 error, 2 usage) and how a parse ends.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "error.hpp"

namespace smtpgate {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

/// The longest argument taken (a path: PATH_MAX).
constexpr size_t kMaxArgumentBytes = 4096;

/// Parses argv; returns an exit code when the program should stop now
/// (--help: 0, a usage error: 2, after CLI11 printed it), nothing otherwise.
/// Every argument must be one line of UTF-8 text of at most
/// kMaxArgumentBytes, or it is a usage error naming it (cut short).
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    std::string_view a(argv[i]);
    size_t bad = bad_text_offset(a);
    if (bad == std::string_view::npos && a.size() <= kMaxArgumentBytes) continue;
    std::string_view name(argv[0]);
    name.remove_prefix(name.rfind('/') == std::string_view::npos ? 0 : name.rfind('/') + 1);
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02x", bad == std::string_view::npos ? 0u : unsigned(uint8_t(a[bad])));
    std::cerr << name << ": argument " << i << " " << quote_input(a)
              << (bad != std::string_view::npos
                      ? " is not text (byte " + std::string(byte) + " at " + std::to_string(bad + 1) + ")"
                      : " is longer than " + std::to_string(kMaxArgumentBytes) + " bytes")
              << ": arguments are UTF-8 text without control characters\n";
    return kExitUsage;
  }
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
