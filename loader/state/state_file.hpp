// Reading a file of the state directory: bounded, parsed by the caller, and
// set aside when it cannot be trusted, so that the next run starts clean
// instead of failing on the same file again.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace smtpgate {

/// No state file smtpgate parses as a whole document comes near this; a
/// larger one is not ours (and its document tree would take several times
/// its size).
constexpr size_t kMaxStateFileBytes = size_t{64} << 20;
/// ranges.json, read as a stream: a million ranges are about 115 MiB.
constexpr size_t kMaxRangesFileBytes = size_t{1} << 30;

/// A state file that could not be used.
struct CorruptFile {
  std::string path;
  std::string cause;     // the parser's message, or the size
  std::string moved_to;  // PATH.corrupt-TIME; empty when it was left in place
};

/// Reads the state file at path and hands its text to parse. Returns false,
/// without calling parse, when the file does not exist. A file larger than
/// max_bytes, or one parse throws on, is corrupt: it is set aside
/// (unless set_aside_corrupt is false: a reader without the lock its writers
/// take must not move a file one of them may just have replaced), then
/// on_corrupt reports it; what on_corrupt throws is thrown. A file that
/// cannot be read throws SystemError and stays where it is.
bool read_state_file(const std::string& path, const std::function<void(const std::string& text)>& parse,
                     const std::function<void(const CorruptFile&)>& on_corrupt, bool set_aside_corrupt = true,
                     size_t max_bytes = kMaxStateFileBytes);

/// read_state_file for a JSON file: parse gets the document; text that is
/// not JSON is corrupt.
bool read_state_json(const std::string& path, const std::function<void(const nlohmann::json& doc)>& parse,
                     const std::function<void(const CorruptFile&)>& on_corrupt, bool set_aside_corrupt = true);

}  // namespace smtpgate
