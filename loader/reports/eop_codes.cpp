#include "eop_codes.hpp"

namespace smtpgate {

std::string eop_code_for(Action a) {
  switch (a) {
    case Action::Drop: return "450 4.4.315 connection timed out (the SYN was dropped silently)";
    case Action::Reject: return "450 4.4.316 connection refused (the gate answered with a TCP reset)";
    case Action::Monitor: return "none: monitor lets the SYN through";
  }
  return "";
}

}  // namespace smtpgate
