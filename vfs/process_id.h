// The calling process's id without a system call per use. glibc no longer
// caches getpid(), and the VFS asks on every commit whether it still runs
// in the process that opened its socket and locks (a forked child must not
// use its parent's). A pthread_atfork handler refreshes the cached id in the
// child.
#pragma once

#include <sys/types.h>

namespace litefs::vfs {

pid_t CurrentPid();

}  // namespace litefs::vfs
