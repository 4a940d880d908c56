// Reading a database file as LiteFS sees it: its header (page size and
// page count) and its pages in order, for the three writers of "whole
// database" LTX files — snapshots, recovery files and full commits.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "ltx/db_file.h"
#include "ltx/status.h"

namespace litefs {

struct DbShape {
  uint32_t page_size = 0;   // 0 when the file is empty
  uint32_t page_count = 0;  // database size in pages
  uint8_t write_version = 0;
  uint32_t change_counter = 0;  // +1 at every rollback-mode commit
};

// Reads the header of an open database file. An empty file is an empty
// database (page_count 0). The page count comes from the header when SQLite
// would trust it, else from the file size.
Result<DbShape> ReadDbShape(int fd, const std::string& path);

// Calls `visit(pgno, page)` for pages 1..page_count, skipping the lock page,
// reading in large batches. `visit` may fail, which stops the walk.
Status ForEachPage(int fd, uint32_t page_size, uint32_t page_count,
                   const std::function<Status(uint32_t, std::span<const uint8_t>)>& visit);

}  // namespace litefs
