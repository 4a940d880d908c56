// Finding the application's SQLite from a preloaded library.
#include "vfs/sqlite_api.h"

#include <dlfcn.h>
#include <link.h>

#include <cstring>
#include <mutex>

namespace litefs::vfs {
namespace {

// Fills `api` from `handle` (a dlopen handle of the object that holds SQLite).
bool FillFrom(void* handle, SqliteApi& api) {
  auto sym = [handle](const char* name) { return dlsym(handle, name); };
  api.vfs_find = reinterpret_cast<decltype(api.vfs_find)>(sym("sqlite3_vfs_find"));
  api.vfs_register = reinterpret_cast<decltype(api.vfs_register)>(sym("sqlite3_vfs_register"));
  api.log = reinterpret_cast<decltype(api.log)>(sym("sqlite3_log"));
  api.mprintf = reinterpret_cast<decltype(api.mprintf)>(sym("sqlite3_mprintf"));
  api.free = reinterpret_cast<decltype(api.free)>(sym("sqlite3_free"));
  api.open = reinterpret_cast<decltype(api.open)>(sym("sqlite3_open"));
  api.open_v2 = reinterpret_cast<decltype(api.open_v2)>(sym("sqlite3_open_v2"));
  api.open16 = reinterpret_cast<decltype(api.open16)>(sym("sqlite3_open16"));
  api.database_file_object =
      reinterpret_cast<decltype(api.database_file_object)>(sym("sqlite3_database_file_object"));
  return api.complete();
}

// Address of an object inside this library, to recognise ourselves.
void SelfMarker() {}

// Opens (without loading) the object that defines `fn`.
void* HandleOfObjectDefining(void* fn) {
  Dl_info info;
  if (!fn || !dladdr(fn, &info) || !info.dli_fname) return nullptr;
  return dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
}

struct PhdrSearch {
  void* handle = nullptr;
  const char* self_path = nullptr;
};

int VisitLoadedObject(struct dl_phdr_info* info, size_t, void* data) {
  auto* search = static_cast<PhdrSearch*>(data);
  if (!info->dlpi_name || !*info->dlpi_name) return 0;
  if (search->self_path && std::strcmp(info->dlpi_name, search->self_path) == 0) return 0;
  void* h = dlopen(info->dlpi_name, RTLD_NOW | RTLD_NOLOAD);
  if (!h) return 0;
  if (dlsym(h, "sqlite3_open_v2") && dlsym(h, "sqlite3_vfs_register")) {
    search->handle = h;
    return 1;
  }
  dlclose(h);
  return 0;
}

SqliteApi Resolve() {
  SqliteApi api;
  // 1. The CLI and most programs: libsqlite3 follows us in lookup order.
  if (void* h = HandleOfObjectDefining(dlsym(RTLD_NEXT, "sqlite3_open_v2"))) {
    if (FillFrom(h, api)) return api;
  }
  // 2. Python and other dlopen users: libsqlite3 is loaded but local.
  if (void* h = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_NOLOAD)) {
    if (FillFrom(h, api)) return api;
  }
  // 3. Any loaded object exporting the API (a renamed or bundled copy).
  Dl_info self;
  PhdrSearch search;
  if (dladdr(reinterpret_cast<void*>(&SelfMarker), &self)) search.self_path = self.dli_fname;
  dl_iterate_phdr(VisitLoadedObject, &search);
  if (search.handle && FillFrom(search.handle, api)) return api;
  return SqliteApi{};
}

}  // namespace

const SqliteApi* PreloadSqliteApi() {
  static std::once_flag once;
  static SqliteApi api;
  std::call_once(once, [] { api = Resolve(); });
  return api.complete() ? &api : nullptr;
}

}  // namespace litefs::vfs
