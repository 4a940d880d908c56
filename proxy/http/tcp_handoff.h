// Handing a TCP connection from one owner to another on the same loop. A
// libuv handle cannot move, so the new owner gets a second handle on a
// duplicate of the socket; the old handle can then be closed without the
// connection ending (close(2) of one descriptor, no shutdown).
#pragma once

#include <uv.h>

namespace litefs::http {

// A new, open, not-reading handle for the socket of `from`, or nullptr when
// that fails. The caller owns it (uv_close, then delete the uv_tcp_t).
uv_tcp_t* DuplicateTcpHandle(uv_loop_t* loop, uv_tcp_t* from);

// uv_close + delete for a handle from DuplicateTcpHandle.
void CloseAndDeleteTcp(uv_tcp_t* tcp);

}  // namespace litefs::http
