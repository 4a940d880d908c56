// Where the sidecar's own threads run (config `cpus`).
//
// A sidecar shares its machine with the app it serves. On a small VM the
// disk signals every completed write with an interrupt on one CPU, and the
// app's synced commit returns soonest when the app can run on that CPU as
// the interrupt wakes it. A sidecar busy on that CPU pushes the app to
// another one, and waking a task across CPUs on such a VM costs more than
// the commit: measured on the project's 2-CPU VM, vanilla SQLite pinned off
// the interrupt CPU made half the synced commits per second, and the
// sidecars kept off it lifted WAL + FULL from 0.51 to 0.78 of vanilla,
// DELETE + FULL from 0.65 to 0.86 (docs/performance.md, session 11).
//
// So by default (`auto`) the sidecar keeps off the CPUs that take the
// interrupts of the disk holding the managed directory, when another CPU is
// left to it. Where the interrupts are spread over every CPU (NVMe, multi-
// queue virtio), or cannot be read (no sysfs, device mapper, tmpfs),
// nothing changes. Commands the sidecar runs (`exec`) keep the CPUs it was
// started with.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "ltx/status.h"

namespace litefs::cpu_placement {

using CpuList = std::vector<int>;  // ascending CPU numbers, no duplicates

// The kernel's list format: "0-3,6". An error names what is wrong.
Result<CpuList> ParseCpuList(std::string_view text);
std::string FormatCpuList(const CpuList& cpus);

// The CPUs the interrupts of the block device holding `dev` (a stat's
// st_dev) are routed to, read under `root` ("" for the real /sys and
// /proc); empty when that cannot be told.
CpuList DiskInterruptCpus(dev_t dev, const std::string& root = "");

struct Choice {
  CpuList cpus;        // where the sidecar runs; empty: where it was started
  std::string reason;  // for the log
};

// `setting` is "auto", "all" or a CPU list; `allowed` where this process may
// run now; `disk_cpus` from DiskInterruptCpus. A list outside `allowed` is
// an error.
Result<Choice> Choose(std::string_view setting, const CpuList& allowed, const CpuList& disk_cpus);

// Chooses for the sidecar holding `dir` and moves the calling thread there
// (call it before any other thread starts: they inherit it).
Result<Choice> PlaceThisThread(std::string_view setting, const std::string& dir);

// Where the calling thread may run; empty if it cannot be read.
CpuList ThreadCpus();
// Moves the calling thread; threads it starts later inherit the set.
Status SetThreadCpus(const CpuList& cpus);

// For its lifetime the calling thread runs on `cpus` (none: unchanged), so
// that a process spawned meanwhile starts there; then moves back.
class ScopedThreadCpus {
 public:
  explicit ScopedThreadCpus(const CpuList& cpus);
  ~ScopedThreadCpus();
  ScopedThreadCpus(const ScopedThreadCpus&) = delete;
  ScopedThreadCpus& operator=(const ScopedThreadCpus&) = delete;

 private:
  CpuList saved_;
};

}  // namespace litefs::cpu_placement
