// Everything the read commands report, for callers that use most of it. Each
// part has its own header:
//   builders.hpp       the JSON documents: status, ranges, feed status,
//                      stats, top, explain (docs/json-schema.md)
//   render_text.hpp    their text views, rendered from that same JSON so the
//                      two views cannot disagree
//   rule_naming.hpp    rules named as the documents print them
//   desired_state.hpp  the ranges the gate should know, and Microsoft's
//   report_json.hpp    the schema version, JSON pieces the documents share
//   eop_codes.hpp      what a refused sender reports
//   clock.hpp          the program's timestamps as wall-clock time
// The drops stream is drops.hpp.
#pragma once

#include "builders.hpp"
#include "clock.hpp"
#include "desired_state.hpp"
#include "eop_codes.hpp"
#include "render_text.hpp"
#include "report_json.hpp"
#include "rule_naming.hpp"
