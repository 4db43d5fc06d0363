// The text views of the read commands, rendered from their JSON documents
// (builders.hpp).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace smtpgate {

/// A JSON value as the text views print it: a string bare, null as "-",
/// anything else as JSON.
std::string json_text(const nlohmann::json& v);

std::string render_status(const nlohmann::json& j);
std::string render_feed_status(const nlohmann::json& j);
std::string render_ranges(const nlohmann::json& j);
std::string render_stats(const nlohmann::json& j);
std::string render_explain(const nlohmann::json& j);
std::string render_top(const nlohmann::json& j);

}  // namespace smtpgate
