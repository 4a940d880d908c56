// See cli_export.h.
#include "sidecar/cli_export.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "sidecar/cli_db_flags.h"
#include "sidecar/fsutil.h"

namespace litefs {
namespace {

struct Download {
  int fd = -1;
  bool write_failed = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* d = static_cast<Download*>(user);
  if (!fs::PwriteFull(d->fd, data, size * n, uint64_t(lseek(d->fd, 0, SEEK_CUR))).ok()) {
    d->write_failed = true;
    return 0;
  }
  lseek(d->fd, off_t(size * n), SEEK_CUR);
  return size * n;
}

constexpr char kHelp[] =
    "usage: litefs export -name DB [-url URL] PATH\n"
    "\n"
    "Downloads database DB from a running node (primary or replica) as a plain\n"
    "SQLite file into PATH, e.g. for a backup. PATH-journal, PATH-wal and\n"
    "PATH-shm are removed first; the file is written to PATH.tmp, synced and\n"
    "renamed over PATH, so PATH is never half-written.\n"
    "\n"
    "  -name DB   the database name in the node's directory (required)\n"
    "  -url URL   the node's API (default http://localhost:20202)\n";

}  // namespace

int ExportMain(const std::vector<std::string>& args) {
  DbCommandParse parsed = ParseDbCommandFlags(args, kHelp, "usage: litefs export -name DB [-url URL] PATH\n");
  if (!parsed.flags) return parsed.exit_status;
  const auto& [name, url, path] = *parsed.flags;
  for (const char* suffix : {"-journal", "-wal", "-shm"}) (void)fs::RemoveFile(path + suffix);
  std::string tmp = path + ".tmp";
  Result<fs::UniqueFd> fd = fs::Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!fd.ok()) {
    fprintf(stderr, "litefs export: %s\n", fd.message().c_str());
    return 1;
  }
  Download d{fd->get()};
  CURL* curl = curl_easy_init();
  char* escaped = curl_easy_escape(curl, name.c_str(), int(name.size()));
  std::string full = url + "/export?name=" + escaped;
  curl_free(escaped);
  curl_easy_setopt(curl, CURLOPT_URL, full.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  char err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  Status st;
  if (rc != CURLE_OK) {
    st = Status::Error("GET " + full + ": " + (*err ? err : curl_easy_strerror(rc)));
  } else if (d.write_failed) {
    st = fs::ErrnoError("write", tmp);
  } else if (fdatasync(fd->get()) != 0) {
    st = fs::ErrnoError("fsync", tmp);
  }
  fd->Reset();
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) st = fs::ErrnoError("rename", tmp);
  if (st.ok()) st = fs::FsyncDir(fs::Dirname(path));
  if (!st.ok()) {
    unlink(tmp.c_str());
    fprintf(stderr, "litefs export: %s\n", st.message().c_str());
    return 1;
  }
  printf("exported %s to %s\n", name.c_str(), path.c_str());
  return 0;
}

}  // namespace litefs
