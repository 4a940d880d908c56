// See litefs_vfs.h.
#include "vfs/litefs_vfs.h"

#include <algorithm>
#include <mutex>
#include <string>

#include "vfs/db_file.h"
#include "vfs/wal_file.h"
#include "vfs/vfs_log.h"

namespace litefs::vfs {
namespace {

struct Registration {
  sqlite3_vfs vfs{};
  sqlite3_vfs* base = nullptr;
  const SqliteApi* api = nullptr;
  const VfsConfig* config = nullptr;
};

Registration g_reg;

sqlite3_vfs* Base() { return g_reg.base; }

// The managed main database a -wal file belongs to, if any.
sqlite3_file* OwnerOfWal(sqlite3_filename name) {
  sqlite3_file* db = g_reg.api->database_file_object(name);
  return IsManagedDbFile(db) ? db : nullptr;
}

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  std::optional<std::string> db;
  if (name && (flags & SQLITE_OPEN_MAIN_DB)) db = ManagedDbName(*g_reg.config, name);
  if (name && (flags & SQLITE_OPEN_WAL)) {
    if (sqlite3_file* owner = OwnerOfWal(name)) {
      auto* real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + WalFileHeaderSize());
      int rc = Base()->xOpen(Base(), name, real, flags, out_flags);
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
    return Base()->xOpen(Base(), name, file, flags, out_flags);
  }
  auto* real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + DbFileHeaderSize());
  int rc = Base()->xOpen(Base(), name, real, flags, out_flags);
  if (rc != SQLITE_OK || !real->pMethods) {
    file->pMethods = nullptr;
    return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
  }
  InitDbFile(file, real, std::move(*db), *g_reg.api, *g_reg.config);
  return SQLITE_OK;
}

int Delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return Base()->xDelete(Base(), name, sync_dir);
}
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return Base()->xAccess(Base(), name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return Base()->xFullPathname(Base(), name, n, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) { return Base()->xDlOpen(Base(), name); }
void DlError(sqlite3_vfs*, int n, char* out) { Base()->xDlError(Base(), n, out); }
void (*DlSym(sqlite3_vfs*, void* handle, const char* sym))(void) {
  return Base()->xDlSym(Base(), handle, sym);
}
void DlClose(sqlite3_vfs*, void* handle) { Base()->xDlClose(Base(), handle); }
int Randomness(sqlite3_vfs*, int n, char* out) { return Base()->xRandomness(Base(), n, out); }
int Sleep(sqlite3_vfs*, int us) { return Base()->xSleep(Base(), us); }
int CurrentTime(sqlite3_vfs*, double* out) { return Base()->xCurrentTime(Base(), out); }
int GetLastError(sqlite3_vfs*, int n, char* out) {
  return Base()->xGetLastError ? Base()->xGetLastError(Base(), n, out) : 0;
}
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  return Base()->xCurrentTimeInt64(Base(), out);
}
int SetSystemCall(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr fn) {
  return Base()->xSetSystemCall(Base(), name, fn);
}
sqlite3_syscall_ptr GetSystemCall(sqlite3_vfs*, const char* name) {
  return Base()->xGetSystemCall(Base(), name);
}
const char* NextSystemCall(sqlite3_vfs*, const char* name) {
  return Base()->xNextSystemCall(Base(), name);
}

Status DoRegister(const SqliteApi& api, const VfsConfig& config) {
  sqlite3_vfs* base = api.vfs_find(nullptr);
  if (!base) return Status::Error("SQLite has no default VFS to wrap");
  g_reg.base = base;
  g_reg.api = &api;
  g_reg.config = &config;
  sqlite3_vfs& v = g_reg.vfs;
  v.iVersion = base->iVersion < 3 ? base->iVersion : 3;
  v.szOsFile = int(std::max(DbFileHeaderSize(), WalFileHeaderSize())) + base->szOsFile;
  v.mxPathname = base->mxPathname;
  v.zName = kVfsName;
  v.pAppData = nullptr;
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
  int rc = api.vfs_register(&v, /*makeDflt=*/1);
  if (rc != SQLITE_OK) return Status::Error("sqlite3_vfs_register failed: " + std::to_string(rc));
  return Status();
}

}  // namespace

Status RegisterLitefsVfs(const SqliteApi& api, const VfsConfig& config) {
  static std::once_flag once;
  static Status result;
  std::call_once(once, [&] { result = DoRegister(api, config); });
  return result;
}

}  // namespace litefs::vfs
