// See wal_file.h.
#include "vfs/wal_file.h"

#include "vfs/db_file.h"

namespace litefs::vfs {
namespace {

struct WalFile {
  sqlite3_file base;  // must be first
  sqlite3_file* real;
  sqlite3_file* db;   // the main database handle; SQLite closes the WAL first
};

WalFile* Cast(sqlite3_file* f) { return reinterpret_cast<WalFile*>(f); }
sqlite3_file* Real(sqlite3_file* f) { return Cast(f)->real; }

int Close(sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); }
int Read(sqlite3_file* f, void* b, int n, sqlite3_int64 o) { return Real(f)->pMethods->xRead(Real(f), b, n, o); }
// SQLite writes each frame's 24-byte header on its own, before the page; a
// commit frame's header has a non-zero database size at bytes 4..7.
bool IsCommitFrameHeader(const void* b, int n, sqlite3_int64 o) {
  constexpr int kFrameHeaderSize = 24;
  constexpr sqlite3_int64 kWalHeaderSize = 32;
  const auto* p = static_cast<const unsigned char*>(b);
  return n == kFrameHeaderSize && o >= kWalHeaderSize && (p[4] | p[5] | p[6] | p[7]) != 0;
}

int Write(sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
  if (IsCommitFrameHeader(b, n, o)) {
    int rc = EnterWalCommitWindow(Cast(f)->db);
    if (rc != SQLITE_OK) return rc;
  }
  return Real(f)->pMethods->xWrite(Real(f), b, n, o);
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) { return Real(f)->pMethods->xTruncate(Real(f), size); }
int Sync(sqlite3_file* f, int flags) {
  int rc = Real(f)->pMethods->xSync(Real(f), flags);
  if (rc == SQLITE_OK) NoteWalSync(Cast(f)->db);
  return rc;
}
int FileSize(sqlite3_file* f, sqlite3_int64* size) { return Real(f)->pMethods->xFileSize(Real(f), size); }
int Lock(sqlite3_file* f, int level) { return Real(f)->pMethods->xLock(Real(f), level); }
int Unlock(sqlite3_file* f, int level) { return Real(f)->pMethods->xUnlock(Real(f), level); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FileControl(sqlite3_file* f, int op, void* arg) { return Real(f)->pMethods->xFileControl(Real(f), op, arg); }
int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int DeviceCharacteristics(sqlite3_file* f) { return Real(f)->pMethods->xDeviceCharacteristics(Real(f)); }

// A -wal file is never memory-mapped or used for shared memory: version 1.
const sqlite3_io_methods kMethods = {
    1, Close, Read, Write, Truncate, Sync, FileSize, Lock, Unlock, CheckReservedLock,
    FileControl, SectorSize, DeviceCharacteristics,
    nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

}  // namespace

size_t WalFileHeaderSize() { return (sizeof(WalFile) + 15) & ~size_t(15); }

void InitWalFile(sqlite3_file* file, sqlite3_file* real, sqlite3_file* db) {
  WalFile* f = Cast(file);
  f->real = real;
  f->db = db;
  f->base.pMethods = &kMethods;
}

}  // namespace litefs::vfs
