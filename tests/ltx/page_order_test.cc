// The page-number rules shared by the encoder and decoder, including the
// lock-page cases that would need a 1 GiB file to reach through a codec.
#include "ltx/page_order.h"

#include <doctest.h>

#include <string>

#include "ltx/checksum.h"

namespace litefs::ltx {
namespace {

bool Mentions(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

TEST_CASE("incremental files: ascending pages within 1..commit, never the lock page") {
  const Header h{.page_size = 4096,
                 .commit = 300000,
                 .min_txid = 2,
                 .max_txid = 2,
                 .pre_apply_checksum = kChecksumFlag | 1};
  const uint32_t lock = LockPgno(4096);
  CHECK(CheckPageOrder(h, 0, 1).ok());
  CHECK(CheckPageOrder(h, 0, 7).ok());
  CHECK(CheckPageOrder(h, 7, 9).ok());
  CHECK(CheckPageOrder(h, lock - 1, lock + 1).ok());
  CHECK(Mentions(CheckPageOrder(h, 9, 7), "page 7 out of order after page 9"));
  CHECK(Mentions(CheckPageOrder(h, 9, 9), "page 9 out of order after page 9"));
  CHECK(Mentions(CheckPageOrder(h, 0, 0), "page number 0"));
  CHECK(Mentions(CheckPageOrder(h, 0, lock), "lock page"));
  CHECK(Mentions(CheckPageOrder(h, 0, 300001), "beyond the commit size of 300000"));
  CHECK(CheckPageBlockComplete(h, 0).ok());
  CHECK(CheckPageBlockComplete(h, 5).ok());
}

TEST_CASE("snapshots: every page from 1 in sequence, skipping only the lock page") {
  const uint32_t lock = LockPgno(512);
  const Header h{.page_size = 512, .commit = lock + 2, .min_txid = 1, .max_txid = 4};
  CHECK(CheckPageOrder(h, 0, 1).ok());
  CHECK(Mentions(CheckPageOrder(h, 0, 2), "expected page 1"));
  CHECK(Mentions(CheckPageOrder(h, 1, 3), "snapshot page 3 out of sequence: expected page 2"));
  CHECK(Mentions(CheckPageOrder(h, lock - 1, lock), "lock page"));
  CHECK(CheckPageOrder(h, lock - 1, lock + 1).ok());
  CHECK(
      Mentions(CheckPageOrder(h, lock - 1, lock + 2), "expected page " + std::to_string(lock + 1)));
  CHECK(CheckPageBlockComplete(h, lock + 2).ok());
  CHECK(Mentions(CheckPageBlockComplete(h, lock + 1), "incomplete snapshot"));
  CHECK(Mentions(CheckPageBlockComplete(h, 0), "incomplete snapshot"));

  Header ends_at_lock = h;
  ends_at_lock.commit = lock;  // the last stored page is then lock - 1
  CHECK(CheckPageBlockComplete(ends_at_lock, lock - 1).ok());
  CHECK_FALSE(CheckPageBlockComplete(ends_at_lock, lock - 2).ok());

  Header empty = h;
  empty.commit = 0;
  CHECK(CheckPageBlockComplete(empty, 0).ok());
  CHECK(Mentions(CheckPageOrder(empty, 0, 1), "beyond the commit size of 0"));
}

}  // namespace
}  // namespace litefs::ltx
