// End-to-end tests of proxy/http's Server: a real server on 127.0.0.1:0 on a
// loop thread, driven by raw request bytes from a blocking client, with the
// exact response bytes checked.
#include <doctest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http_test_support.h"
#include "proxy/http/exchange.h"
#include "proxy/http/server.h"

namespace litefs::http::test {
namespace {

std::string Get(std::string_view path, std::string_view extra_headers = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra_headers) +
         "\r\n";
}

// A handler answering "<path>" with 200 and the path as body.
Server::Handler EchoPath() {
  return [](std::shared_ptr<Exchange> ex) {
    ex->Respond(200, {}, std::string(ex->request().path()));
  };
}

// A handler answering 200 "ok", counting its calls.
Server::Handler CountedOk(std::atomic<int>& calls) {
  return [&calls](std::shared_ptr<Exchange> ex) {
    ++calls;
    ex->Respond(200, {}, "ok");
  };
}

// Thread-safe list of strings recorded by handlers on the loop thread.
class Log {
 public:
  void Add(std::string s) {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push_back(std::move(s));
  }
  std::vector<std::string> items() {
    std::lock_guard<std::mutex> lock(mu_);
    return items_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> items_;
};

// A handler reading the request body, logging "end <status>" when the body
// ends and "close" (then signalling `closed`) when the client connection closes.
Server::Handler BodyReaderLoggingEnds(Log& log, Event& closed) {
  return [&log, &closed](std::shared_ptr<Exchange> ex) {
    CHECK(ex->ReadBody([](std::span<const uint8_t>) {},
                       [&log](Status st) { log.Add("end " + st.message()); })
              .ok());
    ex->OnClose([&log, &closed] {
      log.Add("close");
      closed.Signal();
    });
  };
}

TEST_CASE("GET: request fields, exact response bytes, add_headers hook") {
  Request seen;
  std::optional<std::string> name, bare, missing;
  ServerOptions options;
  options.add_headers = [](std::vector<Header>& h) { h.push_back({"Litefs-Id", "00000000000000AB"}); };
  TestServer server(
      [&](std::shared_ptr<Exchange> ex) {
        seen = ex->request();
        name = ex->request().QueryParam("name");
        bare = ex->request().QueryParam("x");
        missing = ex->request().QueryParam("nope");
        ex->Respond(200, {{"Content-Type", "text/plain"}}, "hello " + *name);
      },
      options);
  Client c(server.port());
  c.Send("GET /hello/w%20d?name=a%20b+c&x HTTP/1.1\r\nHost: example\r\nX-Mixed: v1\r\n"
         "x-mixed: v2\r\n\r\n");
  std::string expected =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nLitefs-Id: 00000000000000AB\r\n"
      "Content-Length: 11\r\n\r\nhello a b c";
  CHECK(c.ReadExactly(expected.size()) == expected);
  CHECK(seen.method == "GET");
  CHECK(seen.target == "/hello/w%20d?name=a%20b+c&x");
  CHECK(seen.path() == "/hello/w%20d");
  CHECK(seen.query() == "name=a%20b+c&x");
  CHECK(seen.http_major == 1);
  CHECK(seen.http_minor == 1);
  CHECK(seen.keep_alive);
  CHECK_FALSE(seen.upgrade);
  REQUIRE(seen.headers.size() == 3);
  CHECK(seen.headers[0].name == "Host");
  CHECK(seen.headers[1].name == "X-Mixed");
  CHECK(seen.headers[2].name == "x-mixed");
  CHECK(*seen.Header("X-MIXED") == "v1");
  CHECK(seen.peer.rfind("127.0.0.1:", 0) == 0);
  CHECK(bare == std::optional<std::string>(""));
  CHECK_FALSE(missing.has_value());
}

TEST_CASE("keep-alive: two requests on one connection") {
  TestServer server(EchoPath());
  Client c(server.port());
  c.Send(Get("/one"));
  std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n/one";
  CHECK(c.ReadExactly(first.size()) == first);
  c.Send(Get("/two"));
  std::string second = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n/two";
  CHECK(c.ReadExactly(second.size()) == second);
  ServerStats stats = server.Stats();
  CHECK(stats.accepted == 1);
  CHECK(stats.connections == 1);
}

TEST_CASE("pipelining: three requests in one write, answered in order") {
  Log log;
  Event slow_called;
  std::shared_ptr<Exchange> slow;
  TestServer server([&](std::shared_ptr<Exchange> ex) {
    std::string path(ex->request().path());
    log.Add("call " + path);
    if (path == "/slow") {
      slow = ex;  // answered later, from the test thread's post
      slow_called.Signal();
      return;
    }
    ex->Respond(200, {}, path);
  });
  Client c(server.port());
  c.Send(Get("/slow") + Get("/a") + Get("/b"));
  REQUIRE(slow_called.WaitFor(1));
  // A round trip through the loop: it has seen all three requests by now.
  CHECK(server.loop().Run([] {}));
  CHECK(log.items() == std::vector<std::string>{"call /slow"});
  CHECK(server.loop().Run([&] {
    slow->Respond(200, {}, "slow");
    log.Add("ended /slow");
    slow.reset();
  }));
  Response r1 = c.ReadResponse();
  Response r2 = c.ReadResponse();
  Response r3 = c.ReadResponse();
  CHECK(r1.body == "slow");
  CHECK(r2.body == "/a");
  CHECK(r3.body == "/b");
  CHECK(log.items() == std::vector<std::string>{"call /slow", "ended /slow", "call /a", "call /b"});
}

TEST_CASE("pipelining: 2000 requests answered asynchronously, in order") {
  // More pipelined input than the server buffers (64 KiB): it stops reading
  // and resumes as responses end.
  std::atomic<uv_loop_t*> loop{nullptr};
  TestServer server([&](std::shared_ptr<Exchange> ex) {
    std::string path(ex->request().path());
    RunAfter(loop.load(), 0, [ex, path] { ex->Respond(200, {}, path); });
  });
  loop = server.loop().loop();
  constexpr int kCount = 2000;
  std::string all;
  for (int i = 0; i < kCount; ++i) all += Get("/r" + std::to_string(i), "X-Pad: " + std::string(40, 'p') + "\r\n");
  REQUIRE(all.size() > 128 * 1024);
  Client c(server.port());
  std::thread sender([&] { c.Send(all); });
  bool in_order = true;
  for (int i = 0; i < kCount && in_order; ++i) {
    Response r = c.ReadResponse();
    in_order = r.complete && r.body == "/r" + std::to_string(i);
  }
  sender.join();
  CHECK(in_order);
}

TEST_CASE("POST with Content-Length read by ReadFullBody") {
  TestServer server([](std::shared_ptr<Exchange> ex) {
    Status s = ex->ReadFullBody(1 << 20, [ex](Status st, std::string body) {
      if (!st.ok()) return;
      ex->Respond(200, {}, std::move(body));
    });
    CHECK(s.ok());
  });
  std::string body = Repeat("0123456789abcdef", 6400);  // 100 KiB
  Client c(server.port());
  c.Send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n");
  c.Send(body.substr(0, 1000));
  c.Send(body.substr(1000));
  Response r = c.ReadResponse();
  CHECK(r.complete);
  CHECK(r.status == 200);
  CHECK(r.body == body);
  // The connection is still usable.
  c.Send("POST /again HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz");
  Response r2 = c.ReadResponse();
  CHECK(r2.body == "xyz");
}

TEST_CASE("chunked request body streamed by ReadBody with pause and resume") {
  Log log;
  TestServer server([&](std::shared_ptr<Exchange> ex) {
    auto got = std::make_shared<std::string>();
    Status s = ex->ReadBody(
        [ex, got, &log](std::span<const uint8_t> data) {
          got->append(reinterpret_cast<const char*>(data.data()), data.size());
          log.Add("data " + std::to_string(data.size()));
          // Hold the body back after every piece; resume on the next loop turn.
          ex->PauseBody();
          ex->ResumeBody();
        },
        [ex, got](Status st) {
          ex->Respond(st.ok() ? 200 : 400, {}, st.ok() ? *got : st.message());
        });
    CHECK(s.ok());
  });
  Client c(server.port());
  c.Send("POST /chunks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
  c.Send("5\r\nhello\r\n");
  c.Send("6\r\n worl");
  c.Send("d\r\n");
  c.Send("0\r\n\r\n");
  Response r = c.ReadResponse();
  CHECK(r.status == 200);
  CHECK(r.body == "hello world");
  CHECK(log.items().size() >= 2);
}

TEST_CASE("ReadBody with a body held paused until the handler resumes it") {
  std::shared_ptr<Exchange> held;
  Event paused;
  auto got = std::make_shared<std::string>();
  TestServer server([&](std::shared_ptr<Exchange> ex) {
    held = ex;
    CHECK(ex->ReadBody(
                  [ex, got, &paused](std::span<const uint8_t> data) {
                    got->append(reinterpret_cast<const char*>(data.data()), data.size());
                    if (got->size() == 4) {
                      ex->PauseBody();
                      paused.Signal();
                    }
                  },
                  [ex, got](Status st) { ex->Respond(st.ok() ? 200 : 500, {}, *got); })
                .ok());
  });
  Client c(server.port());
  c.Send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n");
  REQUIRE(paused.WaitFor(1));
  c.Send("4\r\nefgh\r\n0\r\n\r\n");
  // Nothing is delivered while paused.
  CHECK(server.loop().Run([] {}));
  CHECK(server.loop().Run([&] { CHECK(*got == "abcd"); }));
  CHECK(server.loop().Run([&] { held->ResumeBody(); }));
  Response r = c.ReadResponse();
  CHECK(r.body == "abcdefgh");
  CHECK(server.loop().Run([&] { held.reset(); }));
}

TEST_CASE("ReadFullBody over its limit answers 413 and closes") {
  std::atomic<int> errors{0};
  TestServer server([&](std::shared_ptr<Exchange> ex) {
    CHECK(ex->ReadFullBody(1000, [ex, &errors](Status st, std::string body) {
                  if (!st.ok()) {
                    ++errors;
                    CHECK(body.empty());
                    CHECK(st.message() == "request body larger than 1000 bytes");
                    ex->Respond(400, {}, "ignored: the server answered already");
                    return;
                  }
                  ex->Respond(200, {}, "fine");
                })
                .ok());
  });
  SUBCASE("Content-Length known up front") {
    Client c(server.port());
    c.Send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n" + std::string(2000, 'x'));
    std::string expected =
        "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 23\r\nConnection: close\r\n\r\nrequest body too large\n";
    CHECK(c.ReadExactly(expected.size()) == expected);
    std::string extra;
    CHECK(c.WaitClosed(&extra));
    CHECK(extra == "");
  }
  SUBCASE("chunked body growing past the limit") {
    Client c(server.port());
    c.Send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.Send("258\r\n" + std::string(600, 'a') + "\r\n");
    c.Send("258\r\n" + std::string(600, 'b') + "\r\n");
    Response r = c.ReadResponse();
    CHECK(r.status == 413);
    CHECK(*r.Header("Connection") == "close");
    CHECK(c.WaitClosed());
  }
  CHECK(errors.load() == 1);
}

TEST_CASE("streaming response: 50 MB in 64 KiB pieces with backpressure") {
  constexpr size_t kPiece = 64 * 1024;
  constexpr size_t kPieces = 800;  // 52,428,800 bytes
  struct Producer {
    std::shared_ptr<Exchange> ex;
    std::vector<uint8_t> piece = std::vector<uint8_t>(kPiece);
    size_t sent = 0;
    void Next() {
      if (sent == kPieces) {
        ex->EndResponse();
        ex.reset();
        return;
      }
      // The same buffer is reused: legal only because the next write waits
      // for on_written.
      std::fill(piece.begin(), piece.end(), static_cast<uint8_t>(sent % 251));
      ++sent;
      Status s = ex->WriteBody(std::span<const uint8_t>(piece), [this](Status st) {
        if (st.ok()) Next();
      });
      CHECK(s.ok());
    }
  };
  auto producer = std::make_shared<Producer>();
  std::atomic<size_t> acknowledged{0};
  TestServer server([&](std::shared_ptr<Exchange> ex) {
    producer->ex = ex;
    ex->StartResponse(200, {{"Content-Type", "application/octet-stream"}});
    producer->Next();
  });
  Client c(server.port());
  c.SetReceiveBuffer(64 * 1024);
  c.Send(Get("/stream"));
  // A slow reader: nothing read for a moment. (Not synchronisation: the
  // assertion below holds however long this takes.)
  std::this_thread::sleep_for(300ms);
  CHECK(server.loop().Run([&] { acknowledged = producer->sent; }));
  CHECK(acknowledged.load() < kPieces);  // throttled by the client, not finished
  Response r = c.ReadResponse(false, 60s);
  REQUIRE(r.complete);
  CHECK(r.chunked);
  REQUIRE(r.body.size() == kPiece * kPieces);
  bool content_ok = true;
  for (size_t i = 0; i < kPieces && content_ok; ++i) {
    char expected = static_cast<char>(i % 251);
    content_ok = r.body[i * kPiece] == expected && r.body[i * kPiece + kPiece - 1] == expected;
  }
  CHECK(content_ok);
  ServerStats stats = server.Stats();
  // One piece plus framing and the head: the server never held more.
  CHECK(stats.peak_queued_output_bytes <= kPiece + 512);
  CHECK(stats.queued_output_bytes == 0);
}

TEST_CASE("OnClose fires when the client disconnects mid-stream") {
  Event closed;
  Event started;
  std::atomic<bool> write_failed{false};
  std::shared_ptr<Exchange> kept;
  SUBCASE("while the server writes") {
    auto pump = std::make_shared<std::function<void()>>();
    TestServer server([&](std::shared_ptr<Exchange> ex) {
      ex->OnClose([&] { closed.Signal(); });
      ex->StartResponse(200, {});
      std::weak_ptr<std::function<void()>> weak = pump;
      *pump = [ex, weak, &write_failed] {
        Status s = ex->WriteBody(std::string(16 * 1024, 'z'), [weak, &write_failed](Status st) {
          if (!st.ok()) {
            write_failed = true;
            return;
          }
          if (auto p = weak.lock()) (*p)();
        });
        if (!s.ok()) write_failed = true;
      };
      (*pump)();
      started.Signal();
    });
    {
      Client c(server.port());
      c.Send(Get("/stream"));
      REQUIRE(started.WaitFor(1));
      CHECK(c.ReadSome(1000).size() > 0);
    }  // closed by the client
    CHECK(closed.WaitFor(1));
    CHECK(server.loop().Run([&] { *pump = nullptr; }));
    CHECK(server.Stats().connections == 0);
  }
  SUBCASE("while the stream is idle") {
    TestServer server([&](std::shared_ptr<Exchange> ex) {
      kept = ex;
      ex->OnClose([&] { closed.Signal(); });
      ex->StartResponse(200, {});
      started.Signal();
    });
    {
      Client c(server.port());
      c.Send(Get("/events"));
      REQUIRE(started.WaitFor(1));
      CHECK(c.ReadSome(100).rfind("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", 0) == 0);
    }
    CHECK(closed.WaitFor(1));
    // The exchange outlives its connection; using it is harmless.
    CHECK(server.loop().Run([&] {
      CHECK(kept->closed());
      Status s = kept->WriteBody(std::string("late"), [](Status) { FAIL("must not be called"); });
      CHECK(s.message() == "connection closed");
      kept->EndResponse();
      int calls = 0;
      kept->OnClose([&] { ++calls; });  // already closed: runs at once
      CHECK(calls == 1);
      kept.reset();
    }));
  }
  CHECK(closed.count() == 1);
}

TEST_CASE("malformed requests get 400 and the connection closes") {
  std::atomic<int> calls{0};
  TestServer server([&](std::shared_ptr<Exchange> ex) {
    ++calls;
    ex->Respond(200, {}, "");
  });
  SUBCASE("bad request line") {
    Client c(server.port());
    c.Send("GET /x HTTQ/1.1\r\nHost: t\r\n\r\n");
    Response r = c.ReadResponse();
    CHECK(r.status == 400);
    CHECK(r.head.rfind("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n", 0) ==
          0);
    CHECK(*r.Header("Connection") == "close");
    CHECK(r.body.rfind("malformed request: ", 0) == 0);
    CHECK(c.WaitClosed());
  }
  SUBCASE("bad header after a good pipelined request") {
    Client c(server.port());
    c.Send(Get("/ok") + "GET /bad HTTP/1.1\r\nNo colon here\r\n\r\n");
    Response ok = c.ReadResponse();
    CHECK(ok.status == 200);
    CHECK(ok.Header("Connection") == nullptr);
    Response bad = c.ReadResponse();
    CHECK(bad.status == 400);
    CHECK(c.WaitClosed());
  }
  SUBCASE("bad chunk size while the handler reads the body") {
    Event ended;
    std::string end_error;
    TestServer reader([&](std::shared_ptr<Exchange> ex) {
      CHECK(ex->ReadBody([](std::span<const uint8_t>) {},
                           [ex, &ended, &end_error](Status st) {
                             end_error = st.message();
                             ex->Respond(400, {}, "bad body");
                             ended.Signal();
                           })
                  .ok());
    });
    Client c(reader.port());
    c.Send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n");
    Response r = c.ReadResponse();
    CHECK(r.status == 400);
    CHECK(*r.Header("Connection") == "close");
    REQUIRE(ended.WaitFor(1));
    CHECK(end_error.rfind("malformed request body: ", 0) == 0);
    CHECK(c.WaitClosed());
  }
  CHECK(calls.load() <= 1);
}

TEST_CASE("header limits answer 431") {
  std::atomic<int> calls{0};
  ServerOptions options;
  options.max_header_bytes = 200;
  options.max_headers = 5;
  TestServer server(CountedOk(calls), options);
  auto request_of_size = [](size_t size) {
    std::string head = "GET / HTTP/1.1\r\nX: ";
    std::string r = head + std::string(size - head.size() - 4, 'v') + "\r\n\r\n";
    REQUIRE(r.size() == size);
    return r;
  };
  SUBCASE("a head of exactly max_header_bytes is fine") {
    Client c(server.port());
    c.Send(request_of_size(200));
    CHECK(c.ReadResponse().status == 200);
  }
  SUBCASE("one byte more is not") {
    Client c(server.port());
    c.Send(request_of_size(201));
    Response r = c.ReadResponse();
    CHECK(r.status == 431);
    CHECK(*r.Header("Connection") == "close");
    CHECK(r.body == "request header fields too large\n");
    CHECK(c.WaitClosed());
  }
  SUBCASE("an endless header line") {
    Client c(server.port());
    c.Send("GET / HTTP/1.1\r\nX: " + std::string(100000, 'v'));
    Response r = c.ReadResponse();
    CHECK(r.status == 431);
    CHECK(c.WaitClosed());
  }
  SUBCASE("max_headers fields are fine") {
    Client c(server.port());
    c.Send("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
    CHECK(c.ReadResponse().status == 200);
  }
  SUBCASE("one field more is not") {
    Client c(server.port());
    c.Send("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n");
    Response r = c.ReadResponse();
    CHECK(r.status == 431);
    CHECK(c.WaitClosed());
  }
  CHECK(calls.load() <= 1);
}

TEST_CASE("default header limits: 64 KiB and 100 fields") {
  TestServer server([](std::shared_ptr<Exchange> ex) { ex->Respond(200, {}, "ok"); });
  SUBCASE("oversized header") {
    Client c(server.port());
    c.Send("GET / HTTP/1.1\r\nHost: t\r\nBig: " + std::string(70 * 1024, 'b') + "\r\n\r\n");
    Response r = c.ReadResponse();
    CHECK(r.status == 431);
    CHECK(c.WaitClosed());
  }
  SUBCASE("too many headers") {
    std::string req = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 101; ++i) req += "H" + std::to_string(i) + ": v\r\n";
    Client c(server.port());
    c.Send(req + "\r\n");
    Response r = c.ReadResponse();
    CHECK(r.status == 431);
    CHECK(c.WaitClosed());
  }
}

TEST_CASE("header read timeout answers 408 and closes") {
  ServerOptions options;
  options.header_read_timeout = 200ms;
  std::atomic<int> calls{0};
  TestServer server(CountedOk(calls), options);
  auto check_408 = [](Client& c) {
    auto start = std::chrono::steady_clock::now();
    Response r = c.ReadResponse();
    auto waited = std::chrono::steady_clock::now() - start;
    CHECK(r.status == 408);
    CHECK(*r.Header("Connection") == "close");
    CHECK(r.body == "request header read timeout\n");
    CHECK(waited >= 150ms);
    CHECK(c.WaitClosed());
  };
  SUBCASE("half a request") {
    Client c(server.port());
    c.Send("GET / HTTP/1.1\r\nHost: t\r\n");
    check_408(c);
  }
  SUBCASE("nothing at all") {
    Client c(server.port());
    check_408(c);
  }
  SUBCASE("a kept-alive connection starting its second request") {
    Client c(server.port());
    c.Send(Get("/"));
    CHECK(c.ReadResponse().status == 200);
    c.Send("GET / HT");
    check_408(c);
  }
  CHECK(calls.load() <= 1);
}

TEST_CASE("read_timeout: a request whose head or body is too slow is ended") {
  ServerOptions options;
  options.read_timeout = 200ms;
  SUBCASE("head still arriving: 408 and close") {
    std::atomic<int> calls{0};
    TestServer server(CountedOk(calls), options);
    Client c(server.port());
    c.Send("GET / HTTP/1.1\r\nHost: t\r\n");
    auto start = std::chrono::steady_clock::now();
    Response r = c.ReadResponse();
    CHECK(r.status == 408);
    CHECK(r.body == "request read timeout\n");
    CHECK(std::chrono::steady_clock::now() - start >= 150ms);
    CHECK(c.WaitClosed());
    CHECK(calls.load() == 0);
  }
  SUBCASE("body still arriving: the handler hears of the close") {
    Log log;
    Event done;
    TestServer server(BodyReaderLoggingEnds(log, done), options);
    Client c(server.port());
    c.Send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly some");
    CHECK(c.WaitClosed());
    REQUIRE(done.WaitFor(1));
    CHECK(log.items() == std::vector<std::string>{"end connection closed", "close"});
  }
  SUBCASE("requests within it, one after another on a kept-alive connection") {
    TestServer server(EchoPath(), options);
    Client c(server.port());
    for (int i = 0; i < 3; i++) {
      c.Send("POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n");
      std::this_thread::sleep_for(80ms);  // the request's own pace, not synchronisation
      c.Send("body");
      CHECK(c.ReadResponse().status == 200);
    }
    // Waiting between requests is idle time, not read time.
    std::this_thread::sleep_for(300ms);
    c.Send(Get("/after"));
    Response r = c.ReadResponse();
    CHECK(r.status == 200);
    CHECK(r.body == "/after");
  }
}

TEST_CASE("write_timeout: a response not ended in time closes the connection") {
  ServerOptions options;
  options.write_timeout = 200ms;
  Event closed;
  std::shared_ptr<Exchange> held;  // loop thread only
  TestServer server(
      [&](std::shared_ptr<Exchange> ex) {
        if (ex->request().path() == "/slow") {
          ex->StartResponse(200, {});
          CHECK(ex->WriteBody(std::string("partial"), nullptr).ok());
          ex->OnClose([&] { closed.Signal(); });
          held = ex;  // never ended
          return;
        }
        ex->Respond(200, {}, "fast");
      },
      options);
  Client c(server.port());
  c.Send(Get("/fast"));
  CHECK(c.ReadResponse().body == "fast");
  c.Send(Get("/slow"));
  auto start = std::chrono::steady_clock::now();
  CHECK(c.WaitClosed());
  CHECK(std::chrono::steady_clock::now() - start >= 150ms);
  CHECK(closed.WaitFor(1));
  CHECK(server.loop().Run([&] { held.reset(); }));
}

TEST_CASE("idle keep-alive connections close after idle_timeout") {
  ServerOptions options;
  options.idle_timeout = 100ms;
  TestServer server(EchoPath(), options);
  Client c(server.port());
  c.Send(Get("/x"));
  CHECK(c.ReadResponse().status == 200);
  std::string extra;
  CHECK(c.WaitClosed(&extra));
  CHECK(extra == "");
}

TEST_CASE("HEAD responses carry no body") {
  TestServer server([](std::shared_ptr<Exchange> ex) {
    if (ex->request().path() == "/stream") {
      ex->StartResponse(200, {});
      CHECK(ex->WriteBody(std::string("dropped"), nullptr).ok());
      ex->EndResponse();
      return;
    }
    ex->Respond(200, {}, "hello");
  });
  Client c(server.port());
  c.Send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + Get("/") +
         "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n" + Get("/"));
  std::string expected =
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
      "HTTP/1.1 200 OK\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  CHECK(c.ReadExactly(expected.size()) == expected);
}

TEST_CASE("Expect: 100-continue") {
  SUBCASE("sent when the handler reads the body") {
    TestServer server([](std::shared_ptr<Exchange> ex) {
      CHECK(ex->ReadFullBody(100, [ex](Status st, std::string body) {
                    ex->Respond(st.ok() ? 200 : 500, {}, body);
                  })
                  .ok());
    });
    Client c(server.port());
    c.Send("PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    CHECK(c.ReadExactly(25) == "HTTP/1.1 100 Continue\r\n\r\n");
    c.Send("12345");
    std::string expected = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n12345";
    CHECK(c.ReadExactly(expected.size()) == expected);
    c.Send(Get("/after"));  // still alive
    CHECK(c.ReadResponse().status == 200);
  }
  SUBCASE("not sent, and the connection closes, when the handler answers without reading") {
    TestServer server([](std::shared_ptr<Exchange> ex) { ex->Respond(403, {}, "no"); });
    Client c(server.port());
    c.Send("PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    std::string expected = "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno";
    CHECK(c.ReadExactly(expected.size()) == expected);
    std::string extra;
    CHECK(c.WaitClosed(&extra));
    CHECK(extra == "");
  }
  SUBCASE("an unknown expectation gets 417") {
    std::atomic<int> calls{0};
    TestServer server([&](std::shared_ptr<Exchange> ex) {
      ++calls;
      ex->Respond(200, {}, "");
    });
    Client c(server.port());
    c.Send("PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nExpect: teapot\r\n\r\nx");
    Response r = c.ReadResponse();
    CHECK(r.status == 417);
    CHECK(c.WaitClosed());
    CHECK(calls.load() == 0);
  }
}

TEST_CASE("HTTP/1.0") {
  TestServer server([](std::shared_ptr<Exchange> ex) {
    if (ex->request().path() == "/stream") {
      ex->StartResponse(200, {});
      CHECK(ex->WriteBody(std::string("abc"), nullptr).ok());
      CHECK(ex->WriteBody(std::string("def"), nullptr).ok());
      ex->EndResponse();
      return;
    }
    ex->Respond(200, {}, "hi");
  });
  SUBCASE("closes after the response") {
    Client c(server.port());
    c.Send("GET / HTTP/1.0\r\n\r\n");
    std::string expected = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    CHECK(c.ReadExactly(expected.size()) == expected);
    CHECK(c.WaitClosed());
  }
  SUBCASE("keeps the connection with Connection: keep-alive") {
    Client c(server.port());
    c.Send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    std::string expected =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi";
    CHECK(c.ReadExactly(expected.size()) == expected);
    c.Send("GET / HTTP/1.0\r\n\r\n");
    CHECK(c.ReadResponse().body == "hi");
    CHECK(c.WaitClosed());
  }
  SUBCASE("a streamed body runs until close (no chunking)") {
    Client c(server.port());
    c.Send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    std::string all;
    CHECK(c.WaitClosed(&all));
    CHECK(all == "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabcdef");
  }
}

TEST_CASE("a closing response reaches a slow reader in full") {
  // linger_timeout only starts once the last byte is with the kernel.
  ServerOptions options;
  options.linger_timeout = 50ms;
  const std::string body = Repeat("0123456789", 2'000'000);  // 20 MB
  TestServer server([&](std::shared_ptr<Exchange> ex) { ex->Respond(200, {}, body); }, options);
  Client c(server.port());
  c.SetReceiveBuffer(64 * 1024);
  c.Send("GET / HTTP/1.0\r\n\r\n");
  std::this_thread::sleep_for(300ms);  // a slow reader (not synchronisation)
  Response r = c.ReadResponse(false, 60s);
  CHECK(r.complete);
  CHECK(r.body.size() == body.size());
  CHECK(r.body == body);
  CHECK(c.WaitClosed());
}

TEST_CASE("half-closed clients") {
  SUBCASE("an immediate answer is still delivered") {
    TestServer server(EchoPath());
    Client c(server.port());
    c.Send(Get("/x"));
    c.ShutdownWrite();
    CHECK(c.ReadResponse().body == "/x");
    CHECK(c.WaitClosed());
  }
  SUBCASE("a pending exchange sees the client as gone (like Go)") {
    Event closed;
    std::shared_ptr<Exchange> kept;
    TestServer server([&](std::shared_ptr<Exchange> ex) {
      kept = ex;
      ex->OnClose([&] { closed.Signal(); });
    });
    Client c(server.port());
    c.Send(Get("/x"));
    c.ShutdownWrite();
    CHECK(closed.WaitFor(1));
    CHECK(c.WaitClosed());
    CHECK(server.loop().Run([&] { kept.reset(); }));
  }
}

TEST_CASE("ReadFullBody and ReadBody on a request without a body") {
  TestServer server([](std::shared_ptr<Exchange> ex) {
    if (ex->request().path() == "/full") {
      CHECK(ex->ReadFullBody(10, [ex](Status st, std::string body) {
                  ex->Respond(st.ok() ? 200 : 500, {}, "[" + body + "]");
                }).ok());
    } else {
      CHECK(ex->ReadBody([](std::span<const uint8_t>) { FAIL("no data expected"); },
                         [ex](Status st) { ex->Respond(st.ok() ? 200 : 500, {}, "end"); })
                .ok());
      CHECK(ex->ReadBody(nullptr, nullptr).message() == "request body is already being read");
    }
  });
  Client c(server.port());
  c.Send(Get("/full") + Get("/stream"));
  CHECK(c.ReadResponse().body == "[]");
  CHECK(c.ReadResponse().body == "end");
}

TEST_CASE("framing chosen by the server") {
  TestServer server([](std::shared_ptr<Exchange> ex) {
    std::string path(ex->request().path());
    if (path == "/length") {
      ex->StartResponse(200, {{"content-length", "6"}, {"Transfer-Encoding", "chunked"}});
      CHECK(ex->WriteBody(std::string("abc"), nullptr).ok());
      CHECK(ex->WriteBody(std::string("defg"), nullptr).message() ==
            "body longer than its Content-Length");
      CHECK(ex->WriteBody(std::string("def"), nullptr).ok());
      ex->EndResponse();
    } else if (path == "/short") {
      ex->StartResponse(200, {{"Content-Length", "10"}});
      CHECK(ex->WriteBody(std::string("abc"), nullptr).ok());
      ex->EndResponse();
    } else if (path == "/close") {
      ex->Respond(200, {{"Connection", "close"}, {"Content-Length", "99"}}, "bye");
    } else if (path == "/204") {
      ex->Respond(204, {}, "dropped");
    } else {
      ex->StartResponse(200, {});
      CHECK(ex->WriteBody(std::string(""), nullptr).ok());  // no zero-size chunk
      CHECK(ex->WriteBody(std::string("hello"), nullptr).ok());
      ex->EndResponse();
      ex->EndResponse();  // ignored
      ex->Respond(500, {}, "ignored");
    }
  });
  SUBCASE("handler Content-Length is used, Transfer-Encoding dropped") {
    Client c(server.port());
    c.Send(Get("/length") + Get("/chunked") + Get("/204"));
    std::string expected =
        "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef"
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n";
    CHECK(c.ReadExactly(expected.size()) == expected);
  }
  SUBCASE("a short body closes the connection") {
    Client c(server.port());
    c.Send(Get("/short"));
    std::string all;
    CHECK(c.WaitClosed(&all));
    CHECK(all == "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  }
  SUBCASE("Connection: close from the handler is honoured") {
    Client c(server.port());
    c.Send(Get("/close") + Get("/never"));
    std::string all;
    CHECK(c.WaitClosed(&all));
    CHECK(all == "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye");
  }
}

TEST_CASE("an unread body is discarded before the next request") {
  TestServer server([](std::shared_ptr<Exchange> ex) {
    ex->Respond(200, {}, std::string(ex->request().path()));
  });
  SUBCASE("small body: kept alive") {
    Client c(server.port());
    c.Send("POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'x') +
           Get("/next"));
    Response a = c.ReadResponse();
    CHECK(a.body == "/p");
    CHECK(a.Header("Connection") == nullptr);
    Response b = c.ReadResponse();
    CHECK(b.body == "/next");
  }
  SUBCASE("chunked body (unknown size): Connection: close") {
    Client c(server.port());
    c.Send("POST /p HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
           Get("/next"));
    Response a = c.ReadResponse();
    CHECK(a.body == "/p");
    CHECK(*a.Header("Connection") == "close");
    CHECK(c.WaitClosed());
  }
  SUBCASE("large body: Connection: close") {
    Client c(server.port());
    c.Send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n" +
           std::string(100000, 'x'));
    Response a = c.ReadResponse();
    CHECK(a.body == "/big");
    CHECK(*a.Header("Connection") == "close");
    CHECK(c.WaitClosed());
  }
}

TEST_CASE("Upgrade requests are served as ordinary requests for now") {
  std::atomic<int> upgrades{0};
  TestServer server([&](std::shared_ptr<Exchange> ex) {
    if (ex->request().upgrade) ++upgrades;
    ex->Respond(200, {}, std::string(ex->request().path()));
  });
  Client c(server.port());
  c.Send("GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
         Get("/after"));
  CHECK(c.ReadResponse().body == "/ws");
  CHECK(c.ReadResponse().body == "/after");
  CHECK(upgrades.load() == 1);
}

TEST_CASE("client gone mid-body: on_end gets an error, then OnClose") {
  Log log;
  Event done;
  TestServer server(BodyReaderLoggingEnds(log, done));
  {
    Client c(server.port());
    c.Send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly some");
    CHECK(server.loop().Run([] {}));
  }
  REQUIRE(done.WaitFor(1));
  CHECK(log.items() == std::vector<std::string>{"end connection closed", "close"});
}

TEST_CASE("Listen errors name the address") {
  TestServer server(EchoPath());
  LoopThread loop;
  std::string error;
  std::string bad_port;
  CHECK(loop.Run([&] {
    Server second(loop.loop(), {}, EchoPath());
    error = second.Listen("127.0.0.1:" + std::to_string(server.port())).message();
    Server third(loop.loop(), {}, EchoPath());
    bad_port = third.Listen("127.0.0.1:http").message();
  }));
  CHECK(error == "listen 127.0.0.1:" + std::to_string(server.port()) + ": address already in use");
  CHECK(bad_port == "listen 127.0.0.1:http: invalid port \"http\"");
}

TEST_CASE("Listen on :0 serves IPv4 clients") {
  LoopThread loop;
  Server* server = nullptr;
  int port = 0;
  CHECK(loop.Run([&] {
    server = new Server(loop.loop(), {}, EchoPath());
    CHECK(server->Listen(":0").ok());
    port = server->port();
  }));
  REQUIRE(port > 0);
  {
    Client c(port);
    c.Send(Get("/any"));
    CHECK(c.ReadResponse().body == "/any");
  }
  Event closed;
  CHECK(loop.Run([&] { server->Close([&] { closed.Signal(); }); }));
  CHECK(closed.WaitFor(1));
  CHECK(loop.Run([&] { delete server; }));
}

TEST_CASE("Close() closes every connection and fires OnClose") {
  Event streaming;
  Event on_close;
  std::shared_ptr<Exchange> kept;
  TestServer server([&](std::shared_ptr<Exchange> ex) {
    if (ex->request().path() == "/stream") {
      kept = ex;
      ex->OnClose([&] { on_close.Signal(); });
      ex->StartResponse(200, {});
      streaming.Signal();
      return;
    }
    ex->Respond(200, {}, "ok");
  });
  Client idle(server.port());
  idle.Send(Get("/"));
  CHECK(idle.ReadResponse().status == 200);
  Client stream(server.port());
  stream.Send(Get("/stream"));
  REQUIRE(streaming.WaitFor(1));
  CHECK(server.Stats().connections == 2);
  CHECK(server.Close());
  CHECK(on_close.count() == 1);
  CHECK(idle.WaitClosed());
  CHECK(stream.WaitClosed());
  CHECK(server.loop().Run([&] {
    CHECK(kept->closed());
    kept.reset();
  }));
}

TEST_CASE("max_connections: extra connections are closed at once") {
  ServerOptions options;
  options.max_connections = 2;
  TestServer server(EchoPath(), options);
  Client a(server.port());
  Client b(server.port());
  a.Send(Get("/a"));
  b.Send(Get("/b"));
  CHECK(a.ReadResponse().body == "/a");
  CHECK(b.ReadResponse().body == "/b");
  Client c(server.port());
  std::string extra;
  CHECK(c.WaitClosed(&extra));
  CHECK(extra == "");
  CHECK(server.Stats().rejected == 1);
  a.Send(Get("/a2"));
  CHECK(a.ReadResponse().body == "/a2");
}

TEST_CASE("a handler capturing its exchange does not leak") {
  // Callbacks stored in the exchange hold it; the server drops them when the
  // exchange ends, breaking the cycle (LeakSanitizer checks this test).
  TestServer server([](std::shared_ptr<Exchange> ex) {
    ex->OnClose([ex] {});
    CHECK(ex->ReadFullBody(10, [ex](Status, std::string) {}).ok());
    ex->Respond(200, {}, "");
  });
  Client c(server.port());
  c.Send(Get("/") + Get("/"));
  CHECK(c.ReadResponse().status == 200);
  CHECK(c.ReadResponse().status == 200);
}

}  // namespace
}  // namespace litefs::http::test
