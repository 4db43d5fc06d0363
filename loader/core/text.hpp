// Small text helpers every layer shares.
#pragma once

#include <string>
#include <string_view>

namespace smtpgate {

/// s without the spaces, tabs, CRs and LFs at either end.
std::string_view trim(std::string_view s);
/// s with ASCII letters in lower case (other bytes as they are).
std::string lower(std::string_view s);

}  // namespace smtpgate
