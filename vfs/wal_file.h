// The -wal file of a managed database: every method passes through; xSync
// also tells the database handle that the transaction it is writing was
// synced, because LTX durability follows the app's (DESIGN.md §3.6).
#pragma once

#include <sqlite3.h>

#include <cstddef>

namespace litefs::vfs {

// Bytes reserved in front of the underlying file.
size_t WalFileHeaderSize();

// Wraps `real` (opened by the underlying VFS inside `file`'s allocation at
// WalFileHeaderSize()) for the managed database handle `db`.
void InitWalFile(sqlite3_file* file, sqlite3_file* real, sqlite3_file* db);

}  // namespace litefs::vfs
