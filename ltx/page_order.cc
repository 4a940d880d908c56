// Page-number rules of an LTX page block (see page_order.h).
#include "ltx/page_order.h"

#include <string>

#include "ltx/checksum.h"

namespace litefs::ltx {

Status CheckPageOrder(const Header& h, uint32_t prev, uint32_t pgno) {
  const std::string page_name = "page " + std::to_string(pgno);
  if (pgno == 0) return Status::Error("page number 0 is invalid");
  if (pgno > h.commit) {
    return Status::Error(page_name + " is beyond the commit size of " + std::to_string(h.commit) +
                         " pages");
  }
  const uint32_t lock_pgno = LockPgno(h.page_size);
  if (pgno == lock_pgno)
    return Status::Error(page_name + " is the lock page, which is never stored");
  if (h.IsSnapshot()) {
    const uint32_t want = prev + 1 == lock_pgno ? prev + 2 : prev + 1;
    if (pgno != want) {
      return Status::Error("snapshot " + page_name + " out of sequence: expected page " +
                           std::to_string(want));
    }
  } else if (pgno <= prev) {
    return Status::Error(page_name + " out of order after page " + std::to_string(prev));
  }
  return Status();
}

Status CheckPageBlockComplete(const Header& h, uint32_t last) {
  if (!h.IsSnapshot()) return Status();
  const uint32_t want = h.commit == LockPgno(h.page_size) ? h.commit - 1 : h.commit;
  if (last != want) {
    return Status::Error("incomplete snapshot: last page is " + std::to_string(last) +
                         ", commit is " + std::to_string(h.commit) + " pages");
  }
  return Status();
}

}  // namespace litefs::ltx
