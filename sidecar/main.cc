// `litefs`: the sidecar daemon and its command line.
//
//   litefs run [-config PATH] [-- CMD...]  run the node (and the app under exec)
//   litefs export -name DB ...  download a database from a node
//   litefs import -name DB ...  replace a database on the primary with a file
//   litefs promote [-url URL]   make a candidate take the lease (etcd lease)
//   litefs version              print the version and commit
//
// Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 on a runtime
// error, 2 on a usage or configuration error (as LiteFS).
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "litefs_version.h"
#include "sidecar/cli_export.h"
#include "sidecar/cli_import.h"
#include "sidecar/cli_promote.h"
#include "sidecar/config.h"
#include "sidecar/curl_loop.h"
#include "sidecar/cpu_placement.h"
#include "sidecar/exec_runner.h"
#include "sidecar/shell_words.h"
#include "sidecar/log.h"
#include "sidecar/node.h"

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

void PrintUsage(FILE* out) {
  fprintf(out,
          "litefs: SQLite replication with LiteFS's semantics, without FUSE.\n"
          "\n"
          "Usage:\n"
          "  litefs run [-config PATH] [-- CMD ARGS...]\n"
          "                              run this node: recover its databases, take its role\n"
          "                              (static lease: candidate = primary; etcd lease:\n"
          "                              candidates elect one), replicate, serve commits from\n"
          "                              apps using liblitefs.so and, with proxy.target set,\n"
          "                              the HTTP proxy. Once the node is primary or caught\n"
          "                              up, CMD (or the config's exec) starts with LD_PRELOAD\n"
          "                              and LITEFS_DIR set; signals go to it and litefs\n"
          "                              exits with its status. (\"mount\" is an alias.)\n"
          "  litefs export -name DB [-url URL] PATH\n"
          "                              download a database from a node (default URL\n"
          "                              http://localhost:20202) into PATH, e.g. for a backup\n"
          "  litefs import -name DB [-url URL] PATH\n"
          "                              replace database DB on the primary with the SQLite\n"
          "                              file PATH; the import replicates\n"
          "  litefs promote [-url URL] [-timeout DURATION]\n"
          "                              ask a candidate node (default URL\n"
          "                              http://localhost:20202) to take the etcd lease\n"
          "                              from the primary; waits until it is the primary\n"
          "  litefs version              print the version\n"
          "  litefs help                 show this text\n"
          "\n"
          "Run litefs <command> --help for a command's flags.\n"
          "\n"
          "Without -config, litefs reads the first of ./litefs.yml, $HOME/litefs.yml,\n"
          "/etc/litefs.yml. Apps run with LD_PRELOAD=<libdir>/liblitefs.so and LITEFS_DIR\n"
          "set to the config's dir.\n");
}

void PrintRunUsage(FILE* out) {
  fprintf(out,
          "usage: litefs run [-config PATH] [-no-expand-env] [-- CMD ARGS...]\n"
          "       litefs mount ...   (LiteFS's name, same command)\n"
          "\n"
          "Runs this node: recovers its databases, takes its role (static lease: the\n"
          "candidate is the primary; etcd lease: candidates elect one), replicates,\n"
          "serves commits from apps running with liblitefs.so, the node API and, with\n"
          "proxy.target set, the HTTP proxy. Stops cleanly on SIGINT/SIGTERM; SIGHUP\n"
          "reopens log.file.\n"
          "\n"
          "  -config PATH      the config file (default: the first of ./litefs.yml,\n"
          "                    $HOME/litefs.yml, /etc/litefs.yml)\n"
          "  -no-expand-env    do not replace ${VAR} in the config file\n"
          "  -- CMD ARGS...    the app: started once this node is primary or caught up,\n"
          "                    with LD_PRELOAD=liblitefs.so and LITEFS_DIR set (replaces\n"
          "                    the config's exec). Signals are passed on to it and litefs\n"
          "                    exits with its status.\n"
          "\n"
          "Every config key: docs/configuration.md.\n");
}

struct RunFlags {
  std::optional<std::string> config_path;
  bool no_expand_env = false;
  std::vector<std::string> exec_args;  // after "--": replaces the config's exec
};

// Accepts Go-style flags as LiteFS does: -config X, --config X, -config=X.
std::optional<RunFlags> ParseRunFlags(const std::vector<std::string>& args) {
  RunFlags flags;
  for (size_t i = 0; i < args.size(); i++) {
    std::string a = args[i];
    if (a == "--") {
      flags.exec_args.assign(args.begin() + long(i) + 1, args.end());
      if (flags.exec_args.empty()) {
        fprintf(stderr, "litefs run: no command after \"--\"\n");
        return std::nullopt;
      }
      break;
    }
    if (a.rfind("--", 0) == 0) a = a.substr(1);
    if (a == "-config" && i + 1 < args.size()) {
      flags.config_path = args[++i];
    } else if (a.rfind("-config=", 0) == 0) {
      flags.config_path = a.substr(8);
    } else if (a == "-no-expand-env") {
      flags.no_expand_env = true;
    } else if (a == "-h" || a == "-help") {
      PrintRunUsage(stdout);
      exit(0);
    } else {
      fprintf(stderr, "litefs run: unknown argument \"%s\"\n", args[i].c_str());
      return std::nullopt;
    }
  }
  return flags;
}

struct App {
  uv_loop_t* loop = nullptr;
  litefs::Node* node = nullptr;
  std::unique_ptr<litefs::ExecRunner> exec;
  int exit_code = 0;
  bool stopping = false;
  bool signalled = false;  // a signal was forwarded to the app
  uv_signal_t sigint, sigterm, sighup;
};

void Shutdown(App& app, int code) {
  if (app.stopping) return;
  app.stopping = true;
  app.exit_code = code;
  uv_signal_stop(&app.sigint);
  uv_signal_stop(&app.sigterm);
  uv_signal_stop(&app.sighup);
  if (app.exec) app.exec->Stop(SIGTERM);  // nothing more starts; the running command is told
  app.node->Stop([&app] {
    uv_close(reinterpret_cast<uv_handle_t*>(&app.sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&app.sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&app.sighup), nullptr);
  });
}

int Run(const std::vector<std::string>& args) {
  std::optional<RunFlags> flags = ParseRunFlags(args);
  if (!flags) return kExitUsage;
  litefs::Result<std::string> path = litefs::FindConfigFile(flags->config_path);
  if (!path.ok()) {
    fprintf(stderr, "litefs: %s\n", path.message().c_str());
    return kExitUsage;
  }
  litefs::Result<litefs::Config> config = litefs::LoadConfig(*path, !flags->no_expand_env);
  if (!config.ok()) {
    fprintf(stderr, "litefs: %s\n", config.message().c_str());
    return kExitUsage;
  }
  litefs::log::Configure(config->log.format == "json", config->log.debug);
  if (!config->log.file.empty()) {
    litefs::Status st = litefs::log::SetFile(config->log.file);
    if (!st.ok()) {
      fprintf(stderr, "litefs: log.file: %s\n", st.message().c_str());
      return kExitUsage;
    }
  }
  std::vector<std::vector<std::string>> commands;
  if (!flags->exec_args.empty()) {
    commands.push_back(flags->exec_args);
  } else {
    for (const litefs::Config::ExecCommand& c : config->exec) {
      if (c.if_candidate && !config->lease.candidate) continue;
      litefs::Result<std::vector<std::string>> argv = litefs::SplitShellWords(c.cmd);
      if (!argv.ok()) {
        fprintf(stderr, "litefs: exec: %s\n", argv.message().c_str());
        return kExitUsage;
      }
      if (!argv->empty()) commands.push_back(std::move(argv).value());
    }
  }
  const std::string managed_dir = config->dir;
  litefs::log::Info("litefs starting", {{"version", LITEFS_VERSION}, {"commit", LITEFS_COMMIT},
                                        {"config", *path}, {"dir", config->dir},
                                        {"data_dir", config->data_dir}});
  for (const std::string& w : config->warnings) litefs::log::Warn(w);
  // Before any thread starts: they inherit the placement.
  const litefs::cpu_placement::CpuList started_on = litefs::cpu_placement::ThreadCpus();
  litefs::Result<litefs::cpu_placement::Choice> placed =
      litefs::cpu_placement::PlaceThisThread(config->cpus, config->dir);
  if (!placed.ok()) {
    fprintf(stderr, "litefs: %s\n", placed.message().c_str());
    return kExitUsage;
  }
  litefs::log::Info("cpu placement",
                    {{"cpus", placed->cpus.empty() ? litefs::cpu_placement::FormatCpuList(started_on)
                                                   : litefs::cpu_placement::FormatCpuList(placed->cpus)},
                     {"reason", placed->reason}});

  // A peer that vanished (an app killed mid-commit, a replica gone) must
  // turn into a write error on that connection, not kill the daemon.
  signal(SIGPIPE, SIG_IGN);
  litefs::http::GlobalInit();
  App app;
  app.loop = uv_default_loop();
  litefs::Node node(app.loop, std::move(config).value());
  app.node = &node;
  uv_signal_init(app.loop, &app.sigint);
  uv_signal_init(app.loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;
  auto on_signal = [](uv_signal_t* h, int signum) {
    App& a = *static_cast<App*>(h->data);
    if (a.exec && a.exec->app_running()) {
      // LiteFS: pass the signal on, and shut down once the app has exited.
      litefs::log::Info("signal received; forwarding to the app", {{"signal", strsignal(signum)}});
      a.signalled = true;
      a.exec->Signal(signum);
      return;
    }
    if (a.exec && a.exec->running()) a.exec->Stop(signum);  // a setup command: no app after it
    litefs::log::Info("signal received; shutting down", {{"signal", strsignal(signum)}});
    Shutdown(a, 0);
  };
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  // SIGHUP reopens log.file (logrotate's postrotate).
  uv_signal_init(app.loop, &app.sighup);
  uv_signal_start(&app.sighup, [](uv_signal_t*, int) {
    litefs::Status st = litefs::log::Reopen();
    if (st.ok()) {
      litefs::log::Info("log reopened");
    } else {
      fprintf(stderr, "litefs: %s\n", st.message().c_str());
    }
  }, SIGHUP);

  auto on_synced = [&app, commands = std::move(commands), managed_dir, started_on](litefs::Status st) {
    if (!st.ok()) {
      litefs::log::Error("startup failed", {{"error", st.message()}});
      return Shutdown(app, kExitRuntime);
    }
    if (commands.empty() || app.stopping) return;
    litefs::Result<std::string> preload = litefs::FindPreloadLibrary();
    if (!preload.ok()) {
      litefs::log::Error("cannot run exec", {{"error", preload.message()}});
      return Shutdown(app, kExitRuntime);
    }
    app.exec = std::make_unique<litefs::ExecRunner>(app.loop, litefs::ExecOptions{commands, *preload, managed_dir, started_on});
    app.exec->Start(
        [&app](int code, int term_signal) {
          litefs::log::Info("the app exited", {{"status", std::to_string(code)}});
          // After a forwarded signal, a clean or signalled exit is a clean stop.
          if (app.signalled && (code == 0 || term_signal != 0)) code = 0;
          Shutdown(app, code);
        },
        [&app](litefs::Status error) {
          litefs::log::Error("exec failed", {{"error", error.message()}});
          Shutdown(app, kExitRuntime);
        });
  };
  litefs::Status st = node.Start(
      [&app](litefs::Status st) {
        if (st.ok()) {
          litefs::log::Info("ready");
          return;
        }
        litefs::log::Error("startup failed", {{"error", st.message()}});
        Shutdown(app, kExitRuntime);
      },
      on_synced);
  if (!st.ok()) {
    litefs::log::Error("startup failed", {{"error", st.message()}});
    Shutdown(app, kExitRuntime);
  }
  uv_run(app.loop, UV_RUN_DEFAULT);
  app.exec.reset();
  uv_run(app.loop, UV_RUN_NOWAIT);
  litefs::log::Info("stopped");
  return app.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    PrintUsage(stderr);
    return kExitUsage;
  }
  std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "run" || cmd == "mount") return Run(args);  // "mount": LiteFS's name for it
  if (cmd == "export") return litefs::ExportMain(args);
  if (cmd == "import") return litefs::ImportMain(args);
  if (cmd == "promote") {
    litefs::http::GlobalInit();
    return litefs::PromoteMain(args);
  }
  if (cmd == "version" || cmd == "-version" || cmd == "--version") {
    printf("litefs %s (commit %s)\n", LITEFS_VERSION, LITEFS_COMMIT);
    return 0;
  }
  if (cmd == "help" || cmd == "-h" || cmd == "--help") {
    PrintUsage(stdout);
    return 0;
  }
  fprintf(stderr, "litefs: unknown command \"%s\"\n\n", cmd.c_str());
  PrintUsage(stderr);
  return kExitUsage;
}
