// Reads a file asynchronously (libuv's thread-pool file I/O, never blocking
// the loop) in pieces and hands each to a consumer that calls `next()` once
// the piece has been written onward (to a socket): backpressure, so memory
// stays at one piece whatever the file size or the reader's speed. Used to
// send LTX files in the replication stream and exports over HTTP.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "ltx/status.h"

namespace litefs {

class FilePump {
 public:
  using Consumer = std::function<void(std::span<const uint8_t> piece, std::function<void()> next)>;
  using Done = std::function<void(Status)>;

  // Opens `path` (an error if it cannot) and starts pumping; `done` runs
  // once, at the end of the file or on a read error. With `remove_after`
  // the file is unlinked when the pump is done or cancelled.
  static Result<FilePump*> Start(uv_loop_t* loop, std::string path, bool remove_after,
                                 Consumer consume, Done done, size_t piece_size = 64 * 1024);

  // Stops: no callback runs afterwards, and a `next` the consumer still
  // holds must not be called. The pump frees itself.
  void Cancel();

 private:
  FilePump() = default;
  void ReadNext();
  void Finish(Status st);
  void Free();

  uv_loop_t* loop_ = nullptr;
  uv_fs_t req_;
  std::string path_;
  bool remove_after_ = false;
  int fd_ = -1;
  uint64_t offset_ = 0;
  std::vector<uint8_t> buf_;
  Consumer consume_;
  Done done_;
  bool reading_ = false;    // a read request is in flight
  bool cancelled_ = false;
};

}  // namespace litefs
