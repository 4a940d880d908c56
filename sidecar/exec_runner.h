// ExecRunner: LiteFS's `exec` — the commands a node runs once it is ready.
//
// Every command but the last runs to completion, in order, with the node's
// stdout/stderr; a failure stops there. The last is the app: it runs in the
// background, and its exit ends the node with its status. Each command gets
// LD_PRELOAD with liblitefs.so (prepended to any existing value) and
// LITEFS_DIR set to the managed directory, so an unmodified app replicates.
// Loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <string>
#include <vector>

#include "ltx/status.h"

namespace litefs {

struct ExecOptions {
  std::vector<std::vector<std::string>> commands;  // argv of each, in order
  std::string preload_library;                     // absolute path of liblitefs.so
  std::string dir;                                 // LITEFS_DIR
  // Where the commands run: the CPUs litefs was started on, not the ones it
  // keeps to (sidecar/cpu_placement.h). Empty: wherever litefs runs.
  std::vector<int> cpus;
};

class ExecRunner {
 public:
  // `exit_code` is the app's status, or 128 + signal when a signal killed it.
  using AppExit = std::function<void(int exit_code, int term_signal)>;

  ExecRunner(uv_loop_t* loop, ExecOptions options);
  ~ExecRunner();

  // `on_error` runs when a command cannot start or a setup command fails.
  void Start(AppExit on_app_exit, std::function<void(Status)> on_error);
  bool app_running() const { return app_ != nullptr; }
  bool running() const { return running_ != nullptr; }
  // Forwards a signal to the running command.
  void Signal(int signum);
  // No further command starts; the running one (setup command or app) gets
  // `signum`. Used on shutdown, so an app never starts against a stopped node.
  void Stop(int signum);

 private:
  void RunNext();
  static void OnExit(uv_process_t* process, int64_t exit_status, int term_signal);

  uv_loop_t* loop_;
  ExecOptions options_;
  size_t next_ = 0;
  bool stopped_ = false;
  uv_process_t* running_ = nullptr;
  uv_process_t* app_ = nullptr;
  AppExit on_app_exit_;
  std::function<void(Status)> on_error_;
  std::vector<std::string> env_;
};

// liblitefs.so for exec: $LITEFS_PRELOAD if set, else next to the litefs
// binary (installed layout or build tree), else the configured libdir.
Result<std::string> FindPreloadLibrary();

}  // namespace litefs
