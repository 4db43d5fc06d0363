// What a sender sees when the gate refuses its SYN.
#pragma once

#include <string>

#include "gate_types.hpp"

namespace smtpgate {

/// What a sender (EOP) reports when this action refuses its SYN.
std::string eop_code_for(Action a);

}  // namespace smtpgate
