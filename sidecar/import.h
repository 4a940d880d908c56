// POST /import (reference §1.7): what makes an uploaded file acceptable, and
// how it becomes the next transaction of a database on the primary.
//
// The file must be a plain SQLite database: the "SQLite format 3" header, a
// power-of-two page size in 512..65536, SQLite's fixed payload fractions,
// read/write versions 1 or 2, and a whole number of pages (at least the
// in-header size when SQLite would trust it). Anything else is refused
// before a database is touched.
//
// The LTX written for it holds every page of the file with page 1 adjusted
// so that connections open on the replaced database notice the change: the
// file change counter (and version-valid-for) and the schema cookie become
// the replaced database's plus one (LiteFS sets both to zero; a value that
// differs from the cached one is what matters), the in-header size is the
// page count, and the journal mode bytes stay those of the replaced
// database (a WAL database stays WAL). A new database keeps the file's.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "ltx/pos.h"
#include "ltx/status.h"
#include "sidecar/ltx_writer.h"

namespace litefs {

struct ImportFile {
  uint32_t page_size = 0;
  uint32_t page_count = 0;
};

// Checks the first bytes of an upload (fewer than 100 only when that is the
// whole body) so garbage is refused before it is stored.
Status ValidateImportHeader(std::span<const uint8_t> head);
// Checks the whole file at `path`.
Result<ImportFile> ValidateImportFile(const std::string& path);

// Uploads are stored as `<data-dir>/import-*.tmp`
// until applied; ones a killed process left behind are removed at startup.
inline constexpr char kUploadPrefix[] = "import-";
inline constexpr char kUploadSuffix[] = ".tmp";
void RemoveLeftoverUploads(const std::string& data_dir);

// Page-1 fields of the database an import replaces.
struct ReplacedDb {
  bool has_pages = false;
  bool wal_mode = false;
  uint32_t page_size = 0;
  uint32_t change_counter = 0;
  uint32_t schema_cookie = 0;
  uint8_t write_version = 0;
};
// Reads them from the database at `db_path` as SQLite sees it (file plus
// committed WAL frames).
Result<ReplacedDb> ReadReplacedDb(const std::string& db_path);

// Writes TXID prev.txid+1 replacing the whole database with the file at
// `import_path`, to `ltx_path`. Refuses a page size change of a WAL-mode
// database (SQLite cannot change it either).
Result<SnapshotFile> WriteImportLtx(const std::string& import_path, const ImportFile& file,
                                    const ReplacedDb& old, ltx::Pos prev,
                                    const std::string& ltx_path, const LtxWriteOptions& options);

}  // namespace litefs
