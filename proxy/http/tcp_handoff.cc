// See tcp_handoff.h.
#include "proxy/http/tcp_handoff.h"

#include <unistd.h>

namespace litefs::http {

uv_tcp_t* DuplicateTcpHandle(uv_loop_t* loop, uv_tcp_t* from) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(from), &fd) != 0) return nullptr;
  int copy = dup(fd);
  if (copy < 0) return nullptr;
  auto* tcp = new uv_tcp_t;
  uv_tcp_init(loop, tcp);
  if (uv_tcp_open(tcp, copy) != 0) {
    ::close(copy);
    CloseAndDeleteTcp(tcp);
    return nullptr;
  }
  return tcp;
}

void CloseAndDeleteTcp(uv_tcp_t* tcp) {
  uv_close(reinterpret_cast<uv_handle_t*>(tcp), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
}

}  // namespace litefs::http
