// The commit protocol between liblitefs.so (in the app) and the sidecar,
// spoken over the Unix socket `<dir>/.litefs.sock`.
//
// Every message is a frame: u32 little-endian length of what follows, one
// type byte, then the payload. Strings are u32 length + bytes; integers are
// little-endian. The app side sends one request and (except for Abort and Begun) waits
// for exactly one reply before sending the next, so a connection never has
// more than one request in flight.
//
//   Hello  {u32 version, u32 pid}               -> Ok | Error
//       The Ok may carry (SCM_RIGHTS) the connection page's descriptor
//       (connection_page.h); without it the app announces with messages.
//   Begin  {db}                                 -> Ok{.., capture_slot} | ReadOnly | Busy | Error
//       "this connection is about to write db": the sidecar answers ReadOnly
//       (naming the primary) when this node is not the primary, Busy while
//       the database is not ready for writes yet (recovering).
//   Commit {db, u8 flags, u32 n, n × (u64 offset, u64 length)
//           [, if flags & kCommitWal: u32 salt1, u32 salt2, u32 first_frame,
//              u32 last_frame, u32 page_size, u32 db_pages]
//           [, if flags & kCommitCounter: u32 change_counter]}
//                                               -> Ok{txid, checksum} | Error
//       Rollback journal modes: sent at SQLITE_FCNTL_COMMIT_PHASETWO while the
//       app still holds EXCLUSIVE: the byte ranges of the database file
//       written since the last commit; the sidecar reads the committed pages
//       from the file. WAL mode: sent before the WAL write lock is released:
//       the transaction's frames first..last of the WAL with those salts (the
//       last one is its commit frame); the sidecar reads them from the WAL,
//       together with any committed frame before them it has not captured
//       yet, in WAL order: one LTX file, one TXID per commit frame.
//       With kCommitAsync (the app does not wait unless
//       LITEFS_WAIT_FOR_CAPTURE=1) there is no reply. A WAL commit's frames
//       stay in the WAL until the sidecar reads them, and its LTX is not
//       synced. A rollback-mode commit (sent only while the database's
//       rollback-captured word is tracked, commit_window.h) stays in the
//       database file: the next writer waits, before its first write to
//       the file, until the sidecar has captured it and published its
//       change counter; its copy's flush may wait for that writer's own
//       (sidecar/capture_durability.h). Such a commit names the change
//       counter it left in the file (kCommitCounter): a message read after
//       a recovery that already recorded the commit from the file is then
//       known for what it is and not captured a second time.
//   Begin also waits for that: its answer comes once the database file's
//       last commit is captured.
//   AwaitCapture {db}                           -> Ok
//       answered once the database file's last rollback-mode commit is
//       captured: a writer asks before its first write to the file when it
//       cannot trust the rollback-captured word (approvals were withdrawn
//       since it read its slot).
//       With kCommitFlush only last_frame (the WAL's last committed frame)
//       matters: "capture everything up to it, make the LTX files durable,
//       then answer"; sent before anything may overwrite or delete WAL
//       frames (vfs/db_file.cc).
//   Abort  {db}                                 -> (no reply)
//       the write transaction ended without a commit (rollback).
//   Begun  {db}                                 -> (no reply)
//       "this connection started writing db" without asking: the sidecar
//       approved an earlier Begin and the commit window says that approval
//       still holds (commit_window.h). The sidecar records it as it records
//       an approved Begin (a connection that vanishes before its Commit or
//       Abort triggers a recovery).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ltx/status.h"

namespace litefs::wire {

// 2: apps check the commit window (commit_window.h); 3: Begun; 4: async WAL
// commits and flushes; 5: connection pages and capture slots; 6: async
// rollback-mode commits (writers wait for the rollback-captured word); 7: an
// async rollback-mode commit names its change counter.
inline constexpr uint32_t kProtocolVersion = 7;
inline constexpr size_t kFrameHeaderSize = 5;             // length + type
inline constexpr uint32_t kMaxFrameSize = 64u << 20;      // sanity bound
inline constexpr const char* kSocketName = ".litefs.sock";  // inside the managed dir

enum class MsgType : uint8_t {
  kHello = 1,
  kBegin = 2,
  kCommit = 3,
  kAbort = 4,
  kBegun = 5,
  kAwaitCapture = 6,
  kOk = 0x81,
  kReadOnly = 0x82,
  kError = 0x83,
  kBusy = 0x84,
};

// Commit flags.
inline constexpr uint8_t kCommitSynced = 0x1;  // the app fsynced the database (or WAL) in this transaction
inline constexpr uint8_t kCommitWal = 0x2;     // a WAL transaction: the wal fields are set
inline constexpr uint8_t kCommitAsync = 0x4;   // the app does not wait: no reply
inline constexpr uint8_t kCommitFlush = 0x8;   // WAL: capture up to wal.last_frame
inline constexpr uint8_t kCommitCounter = 0x10;  // rollback mode: change_counter is set

// Where a WAL transaction's frames are.
struct WalFrames {
  uint32_t salt1 = 0, salt2 = 0;
  uint32_t first_frame = 0, last_frame = 0;  // 1-based, inclusive
  uint32_t page_size = 0;
  uint32_t db_pages = 0;  // database size after the transaction
  bool operator==(const WalFrames&) const = default;
};

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const ByteRange&) const = default;
};

struct Message {
  MsgType type = MsgType::kOk;
  // Hello
  uint32_t version = 0;
  uint32_t pid = 0;
  // Begin / Commit / Abort: database name (a file directly inside the dir).
  // ReadOnly: the primary's hostname. Error, Busy: the message.
  std::string text;
  // Commit
  uint8_t flags = 0;
  std::vector<ByteRange> ranges;
  WalFrames wal;  // with kCommitWal
  uint32_t change_counter = 0;  // with kCommitCounter: the database header's, after the commit
  // Ok after Commit: the new position.
  uint64_t txid = 0;
  uint64_t checksum = 0;
  // Ok after Begin: the database's capture-armed slot in the commit window
  // (commit_window.h), 0 for none. Encoded only when non-zero.
  uint32_t capture_slot = 0;
};

// Appends the frame for `msg` to `out`.
void EncodeMessage(const Message& msg, std::string& out);

// Decodes one complete frame body (the bytes after the 4-byte length).
Result<Message> DecodeMessage(std::span<const uint8_t> frame_body);

// Incremental frame splitter for a byte stream: feed bytes, pop messages.
class FrameReader {
 public:
  void Append(std::span<const uint8_t> data);
  // Returns true and fills `msg` when a whole frame is buffered; a malformed
  // or oversized frame yields a failed Status (the connection must be dropped).
  Result<bool> Next(Message& msg);

 private:
  std::vector<uint8_t> buf_;
  size_t start_ = 0;
};

// A set of byte ranges written to a file: appends are O(1) (coalescing with
// the previous write, the common sequential case); the list is sorted and
// merged whenever it doubles, so memory stays proportional to the number of
// distinct runs, not to the number of writes.
class RangeSet {
 public:
  void Add(uint64_t offset, uint64_t length);
  // Sorted, non-overlapping, non-adjacent ranges.
  const std::vector<ByteRange>& Normalized();
  bool empty() const { return ranges_.empty(); }
  void Clear();

 private:
  void Normalize();
  std::vector<ByteRange> ranges_;
  size_t normalized_size_ = 0;
};

}  // namespace litefs::wire
