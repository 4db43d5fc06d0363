#include "state_file.hpp"

#include <sys/stat.h>

#include <cstdint>

#include "fsutil.hpp"

namespace smtpgate {

bool read_state_file(const std::string& path, const std::function<void(const std::string& text)>& parse,
                     const std::function<void(const CorruptFile&)>& on_corrupt, bool set_aside_corrupt,
                     size_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  CorruptFile corrupt{path, "", ""};
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    corrupt.cause = "larger than " + std::to_string(max_bytes) + " bytes";
  } else {
    std::string text = read_file(path);
    try {
      parse(text);
      return true;
    } catch (const std::exception& e) {
      corrupt.cause = e.what();
    }
  }
  if (set_aside_corrupt) corrupt.moved_to = set_aside(path);
  on_corrupt(corrupt);
  return true;
}

bool read_state_json(const std::string& path, const std::function<void(const nlohmann::json& doc)>& parse,
                     const std::function<void(const CorruptFile&)>& on_corrupt, bool set_aside_corrupt) {
  return read_state_file(
      path, [&](const std::string& text) { parse(nlohmann::json::parse(text)); }, on_corrupt, set_aside_corrupt);
}

}  // namespace smtpgate
