// See import.h.
#include "sidecar/import.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>

#include "ltx/db_file.h"
#include "ltx/io.h"
#include "sidecar/db_view.h"
#include "sidecar/fsutil.h"

namespace litefs {
namespace {

constexpr char kMagic[] = "SQLite format 3";  // + NUL: 16 bytes

// The import file read page by page, page 1 adjusted (see import.h).
class ImportSource final : public PageSource {
 public:
  ImportSource(int fd, const ImportFile& file, const ReplacedDb& old)
      : fd_(fd), file_(file), old_(old) {}
  uint32_t page_size() const override { return file_.page_size; }
  uint32_t page_count() const override { return file_.page_count; }
  Status ReadPage(uint32_t pgno, std::span<uint8_t> out) override {
    Result<size_t> n = fs::PreadFull(fd_, out.data(), file_.page_size,
                                     uint64_t(pgno - 1) * file_.page_size);
    if (!n.ok()) return n.status();
    if (*n != file_.page_size) return Status::Error("import file shrank while being read");
    if (pgno == 1) AdjustPage1(out);
    return Status();
  }

 private:
  void AdjustPage1(std::span<uint8_t> p) const {
    io::StoreBE32(p.data() + 28, file_.page_count);
    if (!old_.has_pages) {
      // A new database: SQLite must trust the in-header size we just set.
      std::memcpy(p.data() + 92, p.data() + 24, 4);
      return;
    }
    p[18] = p[19] = old_.write_version;
    io::StoreBE32(p.data() + 24, old_.change_counter + 1);
    io::StoreBE32(p.data() + 92, old_.change_counter + 1);
    io::StoreBE32(p.data() + 40, old_.schema_cookie + 1);
  }

  int fd_;
  ImportFile file_;
  ReplacedDb old_;
};

}  // namespace

Status ValidateImportHeader(std::span<const uint8_t> head) {
  if (head.size() < sizeof kMagic || std::memcmp(head.data(), kMagic, sizeof kMagic) != 0) {
    return Status::Error("not a SQLite database: the file does not start with \"SQLite format 3\"");
  }
  if (head.size() < ltx::kDbHeaderSize) {
    return Status::Error("not a SQLite database: shorter than the 100-byte header");
  }
  Result<ltx::DbHeader> h = ltx::ParseDbHeader(head.first(ltx::kDbHeaderSize));
  if (!h.ok()) return h.status();
  if (h->write_version < 1 || h->write_version > 2 || h->read_version < 1 || h->read_version > 2) {
    return Status::Error("not a SQLite database: file format versions " +
                         std::to_string(h->write_version) + "/" + std::to_string(h->read_version) +
                         " (expected 1 or 2)");
  }
  if (head[21] != 64 || head[22] != 32 || head[23] != 32) {
    return Status::Error("not a SQLite database: wrong payload fractions in the header");
  }
  return Status();
}

Result<ImportFile> ValidateImportFile(const std::string& path) {
  Result<fs::UniqueFd> fd = fs::Open(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (fstat(fd->get(), &st) != 0) return fs::ErrnoError("stat", path);
  uint8_t head[ltx::kDbHeaderSize];
  Result<size_t> n = fs::PreadFull(fd->get(), head, sizeof head, 0);
  if (!n.ok()) return n.status();
  LITEFS_RETURN_IF_ERROR(ValidateImportHeader({head, *n}));
  ltx::DbHeader h = *ltx::ParseDbHeader(head);
  const uint64_t size = uint64_t(st.st_size);
  ImportFile out;
  out.page_size = h.page_size;
  if (h.page_count_valid) {
    if (size < uint64_t(h.page_count) * h.page_size) {
      return Status::Error("truncated SQLite database: the header says " +
                           std::to_string(h.page_count) + " pages of " +
                           std::to_string(h.page_size) + " bytes, the file has " +
                           std::to_string(size) + " bytes");
    }
    out.page_count = h.page_count;
  } else {
    if (size % h.page_size != 0) {
      return Status::Error("truncated SQLite database: " + std::to_string(size) +
                           " bytes is not a whole number of " + std::to_string(h.page_size) +
                           "-byte pages");
    }
    out.page_count = uint32_t(size / h.page_size);
  }
  if (out.page_count == 0) return Status::Error("empty SQLite database: no pages");
  return out;
}

void RemoveLeftoverUploads(const std::string& data_dir) {
  Result<std::vector<std::string>> names = fs::ListDir(data_dir);
  if (!names.ok()) return;
  const std::string_view prefix = kUploadPrefix, suffix = kUploadSuffix;
  for (const std::string& name : *names) {
    if (name.size() > prefix.size() + suffix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      (void)fs::RemoveFile(data_dir + "/" + name);
    }
  }
}

Result<ReplacedDb> ReadReplacedDb(const std::string& db_path) {
  Result<DbView> view = DbView::Open(db_path);
  if (!view.ok()) return view.status();
  ReplacedDb old;
  old.wal_mode = view->file_shape().write_version == 2 || view->wal().last_frame > 0 ||
                 fs::Exists(db_path + "-wal");
  if (view->page_count() == 0) return old;
  std::vector<uint8_t> page1(view->page_size());
  LITEFS_RETURN_IF_ERROR(view->ReadPage(1, page1));
  old.has_pages = true;
  old.page_size = view->page_size();
  old.write_version = page1[18];
  old.change_counter = io::LoadBE32(page1.data() + 24);
  old.schema_cookie = io::LoadBE32(page1.data() + 40);
  return old;
}

Result<SnapshotFile> WriteImportLtx(const std::string& import_path, const ImportFile& file,
                                    const ReplacedDb& old, ltx::Pos prev,
                                    const std::string& ltx_path, const LtxWriteOptions& options) {
  if (old.wal_mode && old.has_pages && old.page_size != file.page_size) {
    return Status::Error("cannot import a database with " + std::to_string(file.page_size) +
                         "-byte pages over a WAL-mode database with " +
                         std::to_string(old.page_size) +
                         "-byte pages (SQLite cannot change the page size in WAL mode)");
  }
  Result<fs::UniqueFd> fd = fs::Open(import_path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  ImportSource source(fd->get(), file, old);
  return WriteReplacementLtx(source, prev, ltx_path, options);
}

}  // namespace litefs
