// Tests for sidecar/shell_words: LiteFS's exec command splitting.
#include <doctest.h>

#include "sidecar/shell_words.h"

using litefs::SplitShellWords;

TEST_CASE("shell words: spaces, quotes, escapes, errors") {
  using V = std::vector<std::string>;
  CHECK(*SplitShellWords("  app  -port 8080 ") == V{"app", "-port", "8080"});
  CHECK(*SplitShellWords("sh -c 'echo $HOME && exit 3'") == V{"sh", "-c", "echo $HOME && exit 3"});
  CHECK(*SplitShellWords("say \"a \\\"quoted\\\" word\" x\\ y") == V{"say", "a \"quoted\" word", "x y"});
  CHECK(*SplitShellWords("a''b \"\"") == V{"ab", ""});
  CHECK(SplitShellWords("").value().empty());
  CHECK_FALSE(SplitShellWords("echo 'open").ok());
  CHECK_FALSE(SplitShellWords("echo \"open").ok());
  CHECK_FALSE(SplitShellWords("echo \\").ok());
}
