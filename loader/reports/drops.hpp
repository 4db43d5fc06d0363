// Turned-away SYNs, one record each, from the program's events ring buffer.
//
// The ring buffer has one consumer position: two readers would take each
// other's records. So exactly one process reads it, the one holding the
// consumer lock (flock of STATE_DIR/drops.lock, a file only its owner can
// open): smtpgated while it runs, or smtpgatectl drops when no daemon does.
// The consumer appends each record to the drop log, STATE_DIR/drops.log (one
// JSON object per line, as `smtpgatectl drops -j` prints it), which is
// rotated to drops.log.1 before an append would take it past its size cap:
// the history is bounded at about twice the cap. Every other reader reads
// and follows the log.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drop_log.hpp"
#include "state.hpp"

struct ring_buffer;

namespace smtpgate {

/// The one reader of the events ring buffer. Not copyable.
class DropRecorder {
 public:
  /// Takes the consumer lock without waiting; nullptr when another process
  /// holds it (that process records the drops). Throws SystemError when no
  /// gate is pinned.
  static std::unique_ptr<DropRecorder> try_take(const Paths& paths, size_t max_log_bytes = kDefaultDropLogBytes);
  ~DropRecorder();
  DropRecorder(const DropRecorder&) = delete;
  DropRecorder& operator=(const DropRecorder&) = delete;

  /// An fd that polls readable when records wait in the ring.
  int epoll_fd() const;
  /// Moves every waiting record to the drop log; returns them.
  std::vector<nlohmann::json> drain();
  /// Waits up to timeout_ms for records, then drains.
  std::vector<nlohmann::json> wait(int timeout_ms);
  /// True while this process holds a DropRecorder (the metric
  /// smtpgate_drops_recording).
  static bool recording_here();

 private:
  DropRecorder() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The daemon's side of the consumer lock: try_take (each call) logs when the
/// lock cannot be taken (naming its holder, or what is wrong with the lock
/// file) and when it is taken again, once per change.
class DropConsumerWatch {
 public:
  std::unique_ptr<DropRecorder> try_take(const Paths& paths);

 private:
  std::string problem_;
};

/// What `drops` shows: the records of the last since_s seconds (after moving
/// what waits in the ring to the log, when no other process consumes it),
/// then, with follow, each new one until the process ends: read from the ring
/// while this process is its consumer (taking it over when the consumer goes
/// away), else from the log. Each record is passed to emit once.
void stream_drops(const Paths& paths, int64_t since_s, bool follow,
                  const std::function<void(const nlohmann::json&)>& emit);

/// "90s", "15m", "2h", "1d" or plain seconds; throws InputError naming it.
int64_t parse_duration_s(const std::string& text);

/// One record as a line of text: time, source, port, verdict, range, origin.
std::string render_drop(const nlohmann::json& record);

}  // namespace smtpgate
