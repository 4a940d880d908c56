// See exec_runner.h.
#include "sidecar/exec_runner.h"

#include "sidecar/cpu_placement.h"

#include <limits.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "litefs_version.h"
#include "sidecar/log.h"

extern char** environ;

namespace litefs {

ExecRunner::ExecRunner(uv_loop_t* loop, ExecOptions options) : loop_(loop), options_(std::move(options)) {
  std::string preload = options_.preload_library;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.rfind("LITEFS_DIR=", 0) == 0) continue;
    if (kv.rfind("LD_PRELOAD=", 0) == 0) {
      std::string_view existing = kv.substr(11);
      if (!existing.empty() && existing.find(preload) == std::string_view::npos) {
        preload += ":" + std::string(existing);
      }
      continue;
    }
    env_.emplace_back(kv);
  }
  env_.push_back("LD_PRELOAD=" + preload);
  env_.push_back("LITEFS_DIR=" + options_.dir);
}

ExecRunner::~ExecRunner() {
  // A child still running outlives us; its handle must be closed.
  if (running_ != nullptr) {
    running_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(running_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_process_t*>(h); });
  }
}

void ExecRunner::Start(AppExit on_app_exit, std::function<void(Status)> on_error) {
  on_app_exit_ = std::move(on_app_exit);
  on_error_ = std::move(on_error);
  RunNext();
}

void ExecRunner::RunNext() {
  if (stopped_ || next_ >= options_.commands.size()) return;
  const std::vector<std::string>& argv = options_.commands[next_];
  bool is_app = next_ + 1 == options_.commands.size();
  ++next_;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (std::string& e : env_) env.push_back(e.data());
  env.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; ++i) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = i;
  }
  uv_process_options_t opts{};
  opts.file = args[0];
  opts.args = args.data();
  opts.env = env.data();
  opts.stdio = stdio;
  opts.stdio_count = 3;
  opts.exit_cb = &ExecRunner::OnExit;
  auto* process = new uv_process_t;
  process->data = this;
  int rc;
  {
    cpu_placement::ScopedThreadCpus app_cpus(options_.cpus);  // the child inherits them
    rc = uv_spawn(loop_, process, &opts);
  }
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(process), [](uv_handle_t* h) { delete reinterpret_cast<uv_process_t*>(h); });
    if (on_error_) on_error_(Status::Error("exec " + argv[0] + ": " + uv_strerror(rc)));
    return;
  }
  running_ = process;
  if (is_app) app_ = process;
  log::Info(is_app ? "started the app" : "running setup command",
            {{"cmd", argv[0]}, {"pid", std::to_string(process->pid)}});
}

void ExecRunner::OnExit(uv_process_t* process, int64_t exit_status, int term_signal) {
  auto* self = static_cast<ExecRunner*>(process->data);
  uv_close(reinterpret_cast<uv_handle_t*>(process), [](uv_handle_t* h) { delete reinterpret_cast<uv_process_t*>(h); });
  if (self == nullptr) return;
  bool was_app = process == self->app_;
  self->running_ = nullptr;
  if (was_app) {
    self->app_ = nullptr;
    int code = term_signal != 0 ? 128 + term_signal : int(exit_status);
    if (self->on_app_exit_) self->on_app_exit_(code, term_signal);
    return;
  }
  if (exit_status != 0 || term_signal != 0) {
    std::string why = term_signal != 0 ? std::string("killed by ") + strsignal(term_signal)
                                       : "exit status " + std::to_string(exit_status);
    if (self->on_error_) self->on_error_(Status::Error("exec setup command failed: " + why));
    return;
  }
  self->RunNext();
}

void ExecRunner::Signal(int signum) {
  if (running_ != nullptr) uv_process_kill(running_, signum);
}

void ExecRunner::Stop(int signum) {
  stopped_ = true;
  Signal(signum);
}

Result<std::string> FindPreloadLibrary() {
  if (const char* env = std::getenv("LITEFS_PRELOAD"); env != nullptr && *env != '\0') {
    if (access(env, R_OK) != 0) return Status::Error(std::string("LITEFS_PRELOAD=") + env + ": not readable");
    return std::string(env);
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  std::vector<std::string> candidates;
  if (n > 0) {
    std::string dir(exe, size_t(n));
    dir = dir.substr(0, dir.rfind('/'));
    candidates = {dir + "/liblitefs.so", dir + "/../vfs/liblitefs.so",
                  dir + "/../" + LITEFS_LIBDIR_NAME + "/liblitefs.so", dir + "/../lib/liblitefs.so"};
  }
  candidates.push_back(std::string(LITEFS_LIBDIR) + "/liblitefs.so");
  for (const std::string& c : candidates) {
    char real[PATH_MAX];
    if (access(c.c_str(), R_OK) == 0 && realpath(c.c_str(), real) != nullptr) return std::string(real);
  }
  std::string tried;
  for (const std::string& c : candidates) tried += (tried.empty() ? "" : ", ") + c;
  return Status::Error("cannot find liblitefs.so for exec (tried " + tried + "; set LITEFS_PRELOAD)");
}

}  // namespace litefs
