// Tests for the proxy's pure rules: path patterns, the read-your-writes token
// and cookie parsing, and hop-by-hop/forwarding header rewriting.
#include <doctest.h>

#include "proxy/forward_headers.h"
#include "proxy/path_pattern.h"
#include "proxy/txid_token.h"

using namespace litefs::proxy;
using litefs::http::Request;

TEST_CASE("path patterns: one wildcard run, whole path, literal otherwise") {
  CHECK(PathMatches("/debug/*", "/debug/"));
  CHECK(PathMatches("/debug/*", "/debug/pprof/heap"));
  CHECK_FALSE(PathMatches("/debug/*", "/debug"));
  CHECK(PathMatches("*.png", "/a/b/logo.png"));
  CHECK_FALSE(PathMatches("*.png", "/logo.png.txt"));
  CHECK(PathMatches("/api/*/status", "/api/v1/x/status"));
  CHECK_FALSE(PathMatches("/api/*/status", "/api/v1/statusx"));
  CHECK(PathMatches("/exact", "/exact"));
  CHECK_FALSE(PathMatches("/exact", "/exact/"));
  // Regex metacharacters are literal.
  CHECK(PathMatches("/a.b", "/a.b"));
  CHECK_FALSE(PathMatches("/a.b", "/axb"));
  CHECK(PathMatches("*", ""));
  CHECK(PathMatches("**a**", "xxaxx"));
  // A pathological pattern stays fast (no exponential backtracking).
  std::string path(5000, 'a');
  CHECK_FALSE(PathMatches("*a*a*a*a*a*a*a*a*b", path));
}

TEST_CASE("txid token: LiteFS's bare form, several databases, issuer") {
  CHECK(ParseHex16("00000000000000ff") == 255u);
  CHECK(ParseHex16("00000000000000FF") == 255u);
  CHECK_FALSE(ParseHex16("ff"));
  CHECK_FALSE(ParseHex16("0000000000000g00"));
  CHECK(FormatHex16(42) == "000000000000002a");

  TxidToken bare = ParseTxidToken("000000000000000a");
  REQUIRE(bare.entries.size() == 1);
  CHECK(bare.entries[0].db.empty());
  CHECK(bare.entries[0].txid == 10);
  CHECK_FALSE(bare.issuer);

  TxidToken t;
  t.entries = {{"app.db", 5}, {"we&ird=name@x.db", 7}};
  t.issuer = 0x9F3A6C0D12E4B871ull;
  std::string s = FormatTxidToken(t);
  CHECK(s == "app.db=0000000000000005&we%26ird%3Dname%40x.db=0000000000000007&@9f3a6c0d12e4b871");
  TxidToken back = ParseTxidToken(s);
  REQUIRE(back.entries.size() == 2);
  CHECK(back.entries[1].db == "we&ird=name@x.db");
  CHECK(back.entries[1].txid == 7);
  CHECK(back.issuer == t.issuer);

  // Garbage entries are dropped, as LiteFS drops a malformed cookie.
  TxidToken junk = ParseTxidToken("x=1&=0000000000000001&zz&@nope&a.db=0000000000000003");
  REQUIRE(junk.entries.size() == 1);
  CHECK(junk.entries[0].db == "a.db");
  CHECK_FALSE(junk.issuer);
}

TEST_CASE("cookies: find by exact name, trim, unquote") {
  CHECK(FindCookie("a=1; __txid=000000000000000a; b=2", "__txid") == "000000000000000a");
  CHECK(FindCookie("x__txid=1; __txid=\"0000000000000001\"", "__txid") == "0000000000000001");
  CHECK_FALSE(FindCookie("a=1; b", "__txid"));
}

namespace {
Request MakeRequest(std::vector<litefs::http::Header> headers) {
  Request r;
  r.method = "POST";
  r.target = "/submit?x=1";
  r.headers = std::move(headers);
  r.peer = "10.1.2.3:5555";
  return r;
}
}  // namespace

TEST_CASE("forwarded request: hop-by-hop stripped, X-Forwarded-* added, body framing kept") {
  Request r = MakeRequest({{"Host", "example.com"},
                           {"Connection", "keep-alive, X-Secret-Hop"},
                           {"Keep-Alive", "timeout=5"},
                           {"X-Secret-Hop", "1"},
                           {"TE", "trailers"},
                           {"Proxy-Authorization", "Basic x"},
                           {"Expect", "100-continue"},
                           {"Transfer-Encoding", "chunked"},
                           {"X-Forwarded-For", "192.0.2.1"},
                           {"Cookie", "a=b"}});
  std::string head;
  ForwardedRequest fwd = BuildUpstreamRequest(r, false, {{"Litefs-Forwarded-By", "abc"}}, head);
  CHECK(fwd.has_body);
  CHECK(fwd.chunked_body);
  CHECK(head.rfind("POST /submit?x=1 HTTP/1.1\r\n", 0) == 0);
  for (const char* gone : {"Connection:", "Keep-Alive:", "X-Secret-Hop:", "TE:", "Proxy-Authorization:", "Expect:"}) {
    CHECK_MESSAGE(head.find(gone) == std::string::npos, gone);
  }
  CHECK(head.find("Host: example.com\r\n") != std::string::npos);
  CHECK(head.find("Cookie: a=b\r\n") != std::string::npos);
  CHECK(head.find("X-Forwarded-For: 192.0.2.1, 10.1.2.3\r\n") != std::string::npos);
  CHECK(head.find("X-Forwarded-Proto: http\r\n") != std::string::npos);
  CHECK(head.find("X-Forwarded-Host: example.com\r\n") != std::string::npos);
  CHECK(head.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(head.find("Litefs-Forwarded-By: abc\r\n") != std::string::npos);
  CHECK(head.size() >= 4);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
}

TEST_CASE("forwarded request: upgrade handshake kept only when tunnelling; absolute form made origin form") {
  Request r = MakeRequest({{"Host", "h"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"}});
  r.method = "GET";
  r.target = "http://h/ws?a=1";
  std::string head;
  ForwardedRequest fwd = BuildUpstreamRequest(r, true, {}, head);
  CHECK_FALSE(fwd.has_body);
  CHECK(head.rfind("GET /ws?a=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(head.find("Upgrade: websocket\r\n") != std::string::npos);
  CHECK(head.find("Connection: Upgrade\r\n") != std::string::npos);
  BuildUpstreamRequest(r, false, {}, head);
  CHECK(head.find("Upgrade:") == std::string::npos);
  CHECK(head.find("X-Forwarded-For: 10.1.2.3\r\n") != std::string::npos);
}

TEST_CASE("response headers: hop-by-hop removed, end-to-end kept in order") {
  litefs::http::Headers h = {{"Content-Type", "text/html"}, {"Connection", "close, X-Hop"},
                             {"X-Hop", "1"}, {"Set-Cookie", "a=1"}, {"Transfer-Encoding", "chunked"},
                             {"Set-Cookie", "b=2"}, {"Keep-Alive", "timeout=1"}};
  StripHopByHop(h, false);
  REQUIRE(h.size() == 3);
  CHECK(h[0].name == "Content-Type");
  CHECK(h[1].value == "a=1");
  CHECK(h[2].value == "b=2");
}
