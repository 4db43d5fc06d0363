#include "command.hpp"

#include <iostream>

namespace smtpgate::ctl {

void print(const nlohmann::json& j, bool as_json, std::string (*render)(const nlohmann::json&)) {
  if (as_json)
    std::cout << j.dump(2) << "\n";
  else
    std::cout << render(j);
}

}  // namespace smtpgate::ctl
