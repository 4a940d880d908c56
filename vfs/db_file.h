// The sqlite3_io_methods of a managed database file (one per open handle).
//
// Primary side: a write transaction must be approved by the sidecar when it
// takes the RESERVED lock (Begin); every byte range written to the database
// file while the handle holds RESERVED or more is remembered; at
// SQLITE_FCNTL_SYNC, just before the commit point, the commit window
// (commit_window.h) must still be open, or the commit fails and SQLite rolls
// the transaction back. At SQLITE_FCNTL_COMMIT_PHASETWO (the commit point has passed, EXCLUSIVE is
// still held) the ranges go to the sidecar (Commit), which reads the
// committed pages from the file and writes the LTX before we return. A
// transaction that ends without PHASETWO was rolled back (Abort).
//
// Replica side: the sidecar refuses Begin, so the write fails with
// SQLITE_READONLY before anything changes; without a sidecar it fails with
// SQLITE_BUSY (the app's busy handler retries until the sidecar is back).
#pragma once

#include <sqlite3.h>

#include <string>

#include "vfs/sqlite_api.h"
#include "vfs/vfs_config.h"

namespace litefs::vfs {

// Bytes reserved in front of the underlying file inside the sqlite3_file
// allocation of a managed database.
size_t DbFileHeaderSize();

// Wraps `real` (already opened by the underlying VFS) as a managed database
// called `name`. `file` is the allocation SQLite passed to xOpen; `real`
// lives inside it at DbFileHeaderSize().
void InitDbFile(sqlite3_file* file, sqlite3_file* real, std::string name,
                const SqliteApi& api, const VfsConfig& config);

// True if `file` is a managed database opened by this library.
bool IsManagedDbFile(const sqlite3_file* file);

// A WAL commit frame of managed database `db` is about to be written: the
// commit window check (SQLITE_OK, or the error that fails the commit).
int EnterWalCommitWindow(sqlite3_file* db);

// The WAL of managed database `db` was synced (xSync on the -wal file):
// the transaction being written is durable in the WAL, so its LTX will be
// synced too.
void NoteWalSync(sqlite3_file* db);

}  // namespace litefs::vfs
