// See litefs_vfs.h.
#include "vfs/litefs_vfs.h"

#include <algorithm>
#include <mutex>
#include <vector>
#include <string>

#include "vfs/db_file.h"
#include "vfs/wal_file.h"
#include "vfs/vfs_log.h"

namespace litefs::vfs {
namespace {

// One per copy of SQLite in the process (the system library, a bundled
// copy that loaded us as an extension, a statically linked one): each has
// its own VFS list. Never freed: SQLite keeps pointers to them.
struct Registration {
  sqlite3_vfs vfs{};
  sqlite3_vfs* base = nullptr;
  SqliteApi api;
  const VfsConfig* config = nullptr;
};

Registration& Reg(sqlite3_vfs* v) { return *static_cast<Registration*>(v->pAppData); }

// The managed main database a -wal file belongs to, if any.
sqlite3_file* OwnerOfWal(const Registration& reg, sqlite3_filename name) {
  sqlite3_file* db = reg.api.database_file_object(name);
  return IsManagedDbFile(db) ? db : nullptr;
}

int Open(sqlite3_vfs* v, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  sqlite3_vfs* base = Reg(v).base;
  const Registration& reg = Reg(v);
  std::optional<std::string> db;
  if (name && (flags & SQLITE_OPEN_MAIN_DB)) db = ManagedDbName(*reg.config, name);
  if (name && (flags & SQLITE_OPEN_WAL)) {
    if (sqlite3_file* owner = OwnerOfWal(reg, name)) {
      auto* real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + WalFileHeaderSize());
      int rc = base->xOpen(base, name, real, flags, out_flags);
      if (rc != SQLITE_OK || !real->pMethods) {
        file->pMethods = nullptr;
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
      }
      InitWalFile(file, real, owner);
      return SQLITE_OK;
    }
  }
  if (!db) {
    // Pass-through: the underlying file occupies the allocation from offset
    // 0 and keeps its own methods, so nothing of ours is on its path.
    return base->xOpen(base, name, file, flags, out_flags);
  }
  auto* real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + DbFileHeaderSize());
  int rc = base->xOpen(base, name, real, flags, out_flags);
  if (rc != SQLITE_OK || !real->pMethods) {
    file->pMethods = nullptr;
    return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
  }
  InitDbFile(file, real, std::move(*db), reg.api, *reg.config);
  return SQLITE_OK;
}

int Delete(sqlite3_vfs* v, const char* name, int sync_dir) {
  return Reg(v).base->xDelete(Reg(v).base, name, sync_dir);
}
int Access(sqlite3_vfs* v, const char* name, int flags, int* out) {
  return Reg(v).base->xAccess(Reg(v).base, name, flags, out);
}
int FullPathname(sqlite3_vfs* v, const char* name, int n, char* out) {
  return Reg(v).base->xFullPathname(Reg(v).base, name, n, out);
}
void* DlOpen(sqlite3_vfs* v, const char* name) { return Reg(v).base->xDlOpen(Reg(v).base, name); }
void DlError(sqlite3_vfs* v, int n, char* out) { Reg(v).base->xDlError(Reg(v).base, n, out); }
void (*DlSym(sqlite3_vfs* v, void* handle, const char* sym))(void) {
  return Reg(v).base->xDlSym(Reg(v).base, handle, sym);
}
void DlClose(sqlite3_vfs* v, void* handle) { Reg(v).base->xDlClose(Reg(v).base, handle); }
int Randomness(sqlite3_vfs* v, int n, char* out) { return Reg(v).base->xRandomness(Reg(v).base, n, out); }
int Sleep(sqlite3_vfs* v, int us) { return Reg(v).base->xSleep(Reg(v).base, us); }
int CurrentTime(sqlite3_vfs* v, double* out) { return Reg(v).base->xCurrentTime(Reg(v).base, out); }
int GetLastError(sqlite3_vfs* v, int n, char* out) {
  return Reg(v).base->xGetLastError ? Reg(v).base->xGetLastError(Reg(v).base, n, out) : 0;
}
int CurrentTimeInt64(sqlite3_vfs* v, sqlite3_int64* out) {
  return Reg(v).base->xCurrentTimeInt64(Reg(v).base, out);
}
int SetSystemCall(sqlite3_vfs* v, const char* name, sqlite3_syscall_ptr fn) {
  return Reg(v).base->xSetSystemCall(Reg(v).base, name, fn);
}
sqlite3_syscall_ptr GetSystemCall(sqlite3_vfs* v, const char* name) {
  return Reg(v).base->xGetSystemCall(Reg(v).base, name);
}
const char* NextSystemCall(sqlite3_vfs* v, const char* name) {
  return Reg(v).base->xNextSystemCall(Reg(v).base, name);
}

Status DoRegister(Registration& reg) {
  sqlite3_vfs* base = reg.api.vfs_find(nullptr);
  if (!base) return Status::Error("SQLite has no default VFS to wrap");
  reg.base = base;
  sqlite3_vfs& v = reg.vfs;
  v.iVersion = base->iVersion < 3 ? base->iVersion : 3;
  v.szOsFile = int(std::max(DbFileHeaderSize(), WalFileHeaderSize())) + base->szOsFile;
  v.mxPathname = base->mxPathname;
  v.zName = kVfsName;
  v.pAppData = &reg;
  v.xOpen = Open;
  v.xDelete = Delete;
  v.xAccess = Access;
  v.xFullPathname = FullPathname;
  v.xDlOpen = DlOpen;
  v.xDlError = DlError;
  v.xDlSym = DlSym;
  v.xDlClose = DlClose;
  v.xRandomness = Randomness;
  v.xSleep = Sleep;
  v.xCurrentTime = CurrentTime;
  v.xGetLastError = GetLastError;
  if (v.iVersion >= 2) v.xCurrentTimeInt64 = CurrentTimeInt64;
  if (v.iVersion >= 3) {
    v.xSetSystemCall = SetSystemCall;
    v.xGetSystemCall = GetSystemCall;
    v.xNextSystemCall = NextSystemCall;
  }
  int rc = reg.api.vfs_register(&v, /*makeDflt=*/1);
  if (rc != SQLITE_OK) return Status::Error("sqlite3_vfs_register failed: " + std::to_string(rc));
  return Status();
}

}  // namespace

Status RegisterLitefsVfs(const SqliteApi& api, const VfsConfig& config) {
  static std::mutex mu;
  static std::vector<Registration*> registrations;
  std::lock_guard<std::mutex> lock(mu);
  for (Registration* r : registrations) {
    if (r->api.vfs_register == api.vfs_register) return Status();  // this SQLite has it
  }
  auto* reg = new Registration;
  reg->api = api;
  reg->config = &config;
  Status st = DoRegister(*reg);
  if (!st.ok()) {
    delete reg;
    return st;
  }
  registrations.push_back(reg);
  return st;
}

}  // namespace litefs::vfs
