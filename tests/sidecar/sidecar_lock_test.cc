// The sidecar lock page as an app sees it (vfs/connection_page.h): live
// while the locking thread serves, gone once it releases or ends.
#include "sidecar/sidecar_lock.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "doctest/doctest.h"
#include "vfs/connection_page.h"

namespace litefs {
namespace {

namespace layout = connection_page::sidecar_lock;

// A read-only mapping of the lock page, as an app makes it.
struct AppView {
  explicit AppView(int fd)
      : page(static_cast<uint8_t*>(mmap(nullptr, layout::kSize, PROT_READ, MAP_SHARED, fd, 0))) {
    REQUIRE(page != MAP_FAILED);
  }
  ~AppView() { munmap(page, layout::kSize); }
  uint8_t* page;
};

std::unique_ptr<SidecarLock> MustCreate() {
  Result<std::unique_ptr<SidecarLock>> lock = SidecarLock::Create();
  REQUIRE_MESSAGE(lock.ok(), lock.message());
  return std::move(*lock);
}

}  // namespace

TEST_CASE("an app reads its sidecar as serving until the lock is released") {
  std::unique_ptr<SidecarLock> lock = MustCreate();
  AppView app(lock->fd());
  std::vector<uint8_t> connection(connection_page::kSize, 0);
  CHECK(std::equal(layout::kMagic, layout::kMagic + 8, app.page));
  CHECK(connection_page::SidecarServes(app.page, connection.data()));

  SUBCASE("a dropped connection is not served, the others are") {
    std::vector<uint8_t> dropped(connection_page::kSize, 0);
    dropped[connection_page::kDroppedOffset] = 1;
    CHECK_FALSE(connection_page::SidecarServes(app.page, dropped.data()));
    CHECK(connection_page::SidecarServes(app.page, connection.data()));
  }
  SUBCASE("released: no connection is served") {
    lock->Release();
    CHECK_FALSE(lock->held());
    CHECK_FALSE(connection_page::SidecarServes(app.page, connection.data()));
    lock->Release();  // idempotent
  }
}

TEST_CASE("a lock whose thread ended reads as gone: the kernel marks it") {
  std::unique_ptr<SidecarLock> lock;
  // The thread ends holding the lock, as the sidecar's loop thread does when
  // the process is killed.
  std::thread([&] { lock = MustCreate(); }).join();
  AppView app(lock->fd());
  std::vector<uint8_t> connection(connection_page::kSize, 0);
  CHECK_FALSE(connection_page::SidecarServes(app.page, connection.data()));
  uint32_t word;
  std::memcpy(&word, app.page + layout::kMutexOffset, sizeof word);
  CHECK(word == FUTEX_OWNER_DIED);
}

TEST_CASE("apps cannot map the lock page writable or write it") {
  std::unique_ptr<SidecarLock> lock = MustCreate();
  errno = 0;
  CHECK(mmap(nullptr, layout::kSize, PROT_READ | PROT_WRITE, MAP_SHARED, lock->fd(), 0) == MAP_FAILED);
  CHECK(errno == EPERM);
  AppView app(lock->fd());
  CHECK(mprotect(app.page, layout::kSize, PROT_READ | PROT_WRITE) != 0);
  CHECK(pwrite(lock->fd(), "x", 1, 0) < 0);
}

}  // namespace litefs
