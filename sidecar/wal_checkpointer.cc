// See wal_checkpointer.h.
#include "sidecar/wal_checkpointer.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "sidecar/log.h"

extern char** environ;

namespace litefs {

void WalCheckpointer::Run(const std::string& db_path) {
  if (running_.count(db_path)) return;
  struct Child {
    uv_process_t proc;
    WalCheckpointer* owner;
    std::string db_path;
  };
  auto* child = new Child{{}, this, db_path};
  std::string exe = "/proc/self/exe";
  std::string cmd = "internal-checkpoint";
  char* args[] = {exe.data(), cmd.data(), child->db_path.data(), nullptr};
  // The child must use plain SQLite, never the litefs VFS.
  std::vector<char*> env;
  for (char** e = environ; *e; e++) {
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0) env.push_back(*e);
  }
  env.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = 2;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t options{};
  options.file = exe.c_str();
  options.args = args;
  options.env = env.data();
  options.stdio_count = 3;
  options.stdio = stdio;
  options.exit_cb = [](uv_process_t* p, int64_t status, int) {
    auto* c = static_cast<Child*>(p->data);
    if (status != 0) log::Warn("replica checkpoint failed", {{"db", c->db_path}});
    c->owner->running_.erase(c->db_path);
    uv_close(reinterpret_cast<uv_handle_t*>(p),
             [](uv_handle_t* h) { delete static_cast<Child*>(h->data); });
  };
  child->proc.data = child;
  int rc = uv_spawn(loop_, &child->proc, &options);
  if (rc != 0) {
    log::Warn("cannot start a replica checkpoint", {{"db", db_path}, {"error", uv_strerror(rc)}});
    uv_close(reinterpret_cast<uv_handle_t*>(&child->proc),
             [](uv_handle_t* h) { delete static_cast<Child*>(h->data); });
    return;
  }
  running_.insert(db_path);
}

int WalCheckpointer::CheckpointMain(const std::string& db_path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix");
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, 1000);
    rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    fprintf(stderr, "litefs: checkpoint of %s: %s\n", db_path.c_str(),
            db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  }
  sqlite3_close(db);
  return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : 1;
}

}  // namespace litefs
