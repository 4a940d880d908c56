// See rollback_journal.h.
#include "sidecar/rollback_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <utility>

#include "ltx/io.h"

namespace litefs::sqlite {
namespace {

constexpr uint8_t kJournalMagic[8] = {0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7};

// Journal files (device, inode) whose directory entry this process synced:
// the same file needs no second directory sync; a file deleted and created
// again (another inode) does.
class DurableEntries {
 public:
  bool Has(const struct stat& st) {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.count({st.st_dev, st.st_ino}) > 0;
  }
  void Add(const struct stat& st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (entries_.size() > 4096) entries_.clear();  // bounded; forgetting costs a sync
    entries_.insert({st.st_dev, st.st_ino});
  }

 private:
  std::mutex mu_;
  std::set<std::pair<dev_t, ino_t>> entries_;
};

DurableEntries& Durable() {
  static DurableEntries entries;
  return entries;
}

}  // namespace

Result<JournalWriter> JournalWriter::Create(std::string path, uint32_t page_size,
                                            uint32_t original_page_count, uint32_t nonce) {
  Result<fs::UniqueFd> fd = fs::Open(path, O_RDWR | O_CREAT, 0644);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (fstat(fd->get(), &st) != 0) return fs::ErrnoError("stat", path);
  // Records start after the header sector; the header is written last.
  if (lseek(fd->get(), kJournalSectorSize, SEEK_SET) < 0) return fs::ErrnoError("seek", path);
  JournalWriter j(std::move(path), std::move(fd).value(), page_size, original_page_count, nonce);
  j.entry_durable_ = Durable().Has(st);
  return j;
}

JournalWriter::JournalWriter(std::string path, fs::UniqueFd fd, uint32_t page_size,
                             uint32_t original_page_count, uint32_t nonce)
    : path_(std::move(path)),
      fd_(std::move(fd)),
      fd_out_(std::make_unique<io::FdWriter>(fd_.get())),
      out_(std::make_unique<io::BufferedWriter>(*fd_out_, 256 * 1024)),
      page_size_(page_size),
      original_page_count_(original_page_count),
      nonce_(nonce) {}

uint32_t JournalWriter::RecordChecksum(uint32_t nonce, std::span<const uint8_t> page) {
  uint32_t sum = nonce;
  for (int64_t i = int64_t(page.size()) - 200; i > 0; i -= 200) sum += page[size_t(i)];
  return sum;
}

Status JournalWriter::AddPage(uint32_t pgno, std::span<const uint8_t> page) {
  uint8_t word[4];
  io::StoreBE32(word, pgno);
  LITEFS_RETURN_IF_ERROR(out_->Write(word));
  LITEFS_RETURN_IF_ERROR(out_->Write(page));
  io::StoreBE32(word, RecordChecksum(nonce_, page));
  LITEFS_RETURN_IF_ERROR(out_->Write(word));
  records_++;
  return Status();
}

Status JournalWriter::WriteAndSync() {
  std::vector<uint8_t> header(kJournalSectorSize, 0);
  std::copy(std::begin(kJournalMagic), std::end(kJournalMagic), header.begin());
  io::StoreBE32(&header[8], records_);
  io::StoreBE32(&header[12], nonce_);
  io::StoreBE32(&header[16], original_page_count_);
  io::StoreBE32(&header[20], kJournalSectorSize);
  io::StoreBE32(&header[24], page_size_);
  LITEFS_RETURN_IF_ERROR(out_->Flush());
  // A rollback reads on past the records, at the next sector, for another
  // segment's header. In a kept file that sector holds an older apply's
  // bytes: it is cleared, so nothing stale can pass for a segment.
  const uint64_t end = kJournalSectorSize + uint64_t(records_) * (uint64_t(page_size_) + 8);
  const uint64_t next_header = (end + kJournalSectorSize - 1) / kJournalSectorSize * kJournalSectorSize;
  const std::vector<uint8_t> zeros(kJournalSectorSize, 0);
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), zeros.data(), zeros.size(), next_header));
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), header.data(), header.size(), 0));
  if (fdatasync(fd_.get()) != 0) return fs::ErrnoError("fsync", path_);
  if (entry_durable_) return Status();
  LITEFS_RETURN_IF_ERROR(fs::FsyncDir(fs::Dirname(path_)));
  struct stat st;
  if (fstat(fd_.get(), &st) == 0) Durable().Add(st);
  entry_durable_ = true;
  return Status();
}

Status JournalWriter::Commit() {
  const std::vector<uint8_t> zeros(kJournalSectorSize, 0);
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), zeros.data(), zeros.size(), 0));
  struct stat st;
  if (fstat(fd_.get(), &st) == 0 && uint64_t(st.st_size) > kKeptJournalLimit &&
      ftruncate(fd_.get(), 0) != 0) {
    return fs::ErrnoError("truncate", path_);
  }
  fd_.Reset();
  return Status();
}

}  // namespace litefs::sqlite
