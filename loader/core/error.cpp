#include "error.hpp"

#include <cstdio>
#include <cstring>

namespace smtpgate {

SystemError::SystemError(const std::string& what, int err)
    : std::runtime_error(what + ": " + std::strerror(err < 0 ? -err : err)), err_(err < 0 ? -err : err) {}

std::string quote_input(std::string_view text) {
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < kShownInputBytes; i++) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    }
  }
  out += "'";
  if (text.size() > kShownInputBytes) out += " (cut; " + std::to_string(text.size()) + " bytes in all)";
  return out;
}

size_t bad_text_offset(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return i;
      i++;
      continue;
    }
    // Lead byte: length, and the range of the first continuation byte that
    // excludes overlong forms, surrogates and code points past U+10FFFF.
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return i;
    }
    if (i + len > text.size()) return i;
    for (size_t k = 1; k < len; k++) {
      unsigned char b = static_cast<unsigned char>(text[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) return i;
    }
    // C1 control characters (U+0080..U+009F) are control characters too.
    if (c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0) return i;
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace smtpgate
