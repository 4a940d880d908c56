// See cli_import.h.
#include "sidecar/cli_import.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "sidecar/cli_db_flags.h"
#include "sidecar/fsutil.h"

namespace litefs {
namespace {

constexpr char kUsage[] = "usage: litefs import -name DB [-url URL] PATH\n";

constexpr char kHelp[] =
    "usage: litefs import -name DB [-url URL] PATH\n"
    "\n"
    "Replaces the content of database DB on a running node with the SQLite\n"
    "database file PATH. The node must be the primary: the import becomes the\n"
    "database's next transaction and replicates to every replica. The database\n"
    "is created if it does not exist. PATH must be a plain SQLite file (no\n"
    "-journal or -wal of its own; checkpoint it first); anything else is refused\n"
    "and the database stays as it was.\n"
    "\n"
    "  -name DB   the database name in the node's directory (required)\n"
    "  -url URL   the node's API (default http://localhost:20202)\n";

size_t ReadBody(char* buf, size_t size, size_t n, void* user) {
  int fd = *static_cast<int*>(user);
  ssize_t got = read(fd, buf, size * n);
  return got < 0 ? CURL_READFUNC_ABORT : size_t(got);
}

size_t CollectReply(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() < 4096) out->append(data, size * n);
  return size * n;
}

}  // namespace

int ImportMain(const std::vector<std::string>& args) {
  DbCommandParse parsed = ParseDbCommandFlags(args, kHelp, kUsage);
  if (!parsed.flags) return parsed.exit_status;
  const auto& [name, url, path] = *parsed.flags;
  Result<fs::UniqueFd> fd = fs::Open(path, O_RDONLY);
  struct stat st;
  if (!fd.ok() || fstat(fd->get(), &st) != 0) {
    fprintf(stderr, "litefs import: %s\n", fd.ok() ? "cannot stat the file" : fd.message().c_str());
    return 1;
  }
  int raw_fd = fd->get();
  CURL* curl = curl_easy_init();
  char* escaped = curl_easy_escape(curl, name.c_str(), int(name.size()));
  std::string full = url + "/import?name=" + escaped;
  curl_free(escaped);
  std::string reply;
  curl_easy_setopt(curl, CURLOPT_URL, full.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadBody);
  curl_easy_setopt(curl, CURLOPT_READDATA, &raw_fd);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(st.st_size));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CollectReply);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
  struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/octet-stream");
  headers = curl_slist_append(headers, "Expect:");  // send at once; the node answers early on garbage
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  char err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
  if (status != 0 && status != 200) {
    // The node's message says why (not a database, not the primary, ...).
    fprintf(stderr, "litefs import: %s: HTTP %ld: %s\n", full.c_str(), status, reply.c_str());
    return 1;
  }
  if (rc != CURLE_OK) {
    fprintf(stderr, "litefs import: POST %s: %s\n", full.c_str(), *err ? err : curl_easy_strerror(rc));
    return 1;
  }
  printf("imported %s into %s\n", path.c_str(), name.c_str());
  return 0;
}

}  // namespace litefs
