// Shared doctest main for every unit-test binary. SIGPIPE is ignored, as in
// the litefs daemon (sidecar/main.cc): a test peer that closes a socket
// early must surface as a write error, not kill the test binary silently.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest.h>

#include <csignal>

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return doctest::Context(argc, argv).run();
}
