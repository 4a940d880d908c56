// Unit tests for the pure parts of proxy/http: request target splitting,
// query decoding, header matching, response head text, listen addresses.
#include <doctest.h>

#include <netinet/in.h>

#include "proxy/http/header.h"
#include "proxy/http/listen_address.h"
#include "proxy/http/request.h"
#include "proxy/http/response_head.h"

namespace litefs::http {
namespace {

Request WithTarget(std::string target) {
  Request r;
  r.target = std::move(target);
  return r;
}

TEST_CASE("Request path and query split the raw target") {
  CHECK(WithTarget("/a/b%20c?x=1&y=2").path() == "/a/b%20c");
  CHECK(WithTarget("/a/b%20c?x=1&y=2").query() == "x=1&y=2");
  CHECK(WithTarget("/plain").query() == "");
  CHECK(WithTarget("/q?").query() == "");
  CHECK(WithTarget("/frag?a=1#x").query() == "a=1");
  CHECK(WithTarget("http://host:8080/p/q?z=9").path() == "/p/q");
  CHECK(WithTarget("http://host:8080/p/q?z=9").query() == "z=9");
  CHECK(WithTarget("http://host").path() == "/");
  CHECK(WithTarget("http://host?a=b").query() == "a=b");
  CHECK(WithTarget("*").path() == "*");
  CHECK(WithTarget("example.com:443").path() == "example.com:443");
  CHECK(WithTarget("example.com:443").query() == "");
}

TEST_CASE("Request QueryParam decodes names and values") {
  Request r = WithTarget("/x?name=a%20b+c&empty=&bare&dup=1&dup=2&k%3D=v%26&bad=%zz%4");
  CHECK(r.QueryParam("name") == std::optional<std::string>("a b c"));
  CHECK(r.QueryParam("empty") == std::optional<std::string>(""));
  CHECK(r.QueryParam("bare") == std::optional<std::string>(""));
  CHECK(r.QueryParam("dup") == std::optional<std::string>("1"));
  CHECK(r.QueryParam("k=") == std::optional<std::string>("v&"));
  CHECK(r.QueryParam("bad") == std::optional<std::string>("%zz%4"));
  CHECK_FALSE(r.QueryParam("missing").has_value());
  CHECK_FALSE(WithTarget("/x").QueryParam("a").has_value());
}

TEST_CASE("Request Header lookup is case-insensitive and keeps order") {
  Request r;
  r.headers = {{"Content-Type", "a"}, {"X-Dup", "1"}, {"x-dup", "2"}};
  REQUIRE(r.Header("content-type") != nullptr);
  CHECK(*r.Header("CONTENT-TYPE") == "a");
  CHECK(*r.Header("X-DUP") == "1");
  CHECK(r.Header("Content-Length") == nullptr);
}

TEST_CASE("PercentDecode keeps malformed escapes") {
  CHECK(PercentDecode("%41%42%4a%4A", false) == "ABJJ");
  CHECK(PercentDecode("a+b", false) == "a+b");
  CHECK(PercentDecode("a+b", true) == "a b");
  CHECK(PercentDecode("%", true) == "%");
  CHECK(PercentDecode("%4", true) == "%4");
  CHECK(PercentDecode("%g1", true) == "%g1");
}

TEST_CASE("HeaderHasToken matches comma-separated tokens") {
  CHECK(HeaderHasToken("close", "close"));
  CHECK(HeaderHasToken("keep-alive, Close", "close"));
  CHECK(HeaderHasToken(" Upgrade ,\tclose ", "upgrade"));
  CHECK_FALSE(HeaderHasToken("closed", "close"));
  CHECK_FALSE(HeaderHasToken("", "close"));
}

TEST_CASE("Response head lines are serialised safely") {
  std::string out;
  AppendStatusLine(out, 431);
  CHECK(out == "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  out.clear();
  AppendStatusLine(out, 299);
  CHECK(out == "HTTP/1.1 299 Status\r\n");
  out.clear();
  CHECK(AppendHeaderLine(out, "X-A", std::string_view("v1\r\nInjected: yes")));
  CHECK(out == "X-A: v1  Injected: yes\r\n");
  out.clear();
  CHECK_FALSE(AppendHeaderLine(out, "Bad Name", std::string_view("v")));
  CHECK_FALSE(AppendHeaderLine(out, "", std::string_view("v")));
  CHECK(out.empty());
  AppendHeaderLine(out, "Content-Length", uint64_t{12345});
  CHECK(out == "Content-Length: 12345\r\n");
}

TEST_CASE("ParseHostPort accepts the three address forms") {
  auto a = ParseHostPort("127.0.0.1:20202");
  REQUIRE(a.ok());
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 20202);
  auto b = ParseHostPort(":8080");
  REQUIRE(b.ok());
  CHECK(b->host == "");
  CHECK(b->port == 8080);
  auto c = ParseHostPort("[::1]:0");
  REQUIRE(c.ok());
  CHECK(c->host == "::1");
  CHECK(c->port == 0);
  auto d = ParseHostPort("localhost:1");
  REQUIRE(d.ok());
  CHECK(d->host == "localhost");

  CHECK(ParseHostPort("nohost").message() == "missing port (want host:port or :port)");
  CHECK(ParseHostPort("h:").message() == "invalid port \"\"");
  CHECK(ParseHostPort("h:70000").message() == "invalid port \"70000\"");
  CHECK(ParseHostPort("h:12x").message() == "invalid port \"12x\"");
  CHECK(ParseHostPort("::1:80").message() == "IPv6 addresses need brackets (want [ipv6]:port)");
  CHECK(ParseHostPort("[::1]80").message() == "invalid address (want [ipv6]:port)");
}

TEST_CASE("ResolveListenAddress orders candidates") {
  auto any = ResolveListenAddress(HostPort{"", 80});
  REQUIRE(any.ok());
  REQUIRE(any->size() == 2);
  CHECK((*any)[0].ss_family == AF_INET6);
  CHECK((*any)[1].ss_family == AF_INET);
  auto v4 = ResolveListenAddress(HostPort{"127.0.0.1", 80});
  REQUIRE(v4.ok());
  REQUIRE(v4->size() == 1);
  CHECK((*v4)[0].ss_family == AF_INET);
  CHECK(ntohs(reinterpret_cast<const sockaddr_in*>(&(*v4)[0])->sin_port) == 80);
  auto v6 = ResolveListenAddress(HostPort{"::1", 81});
  REQUIRE(v6.ok());
  CHECK((*v6)[0].ss_family == AF_INET6);
  auto name = ResolveListenAddress(HostPort{"localhost", 82});
  REQUIRE(name.ok());
  REQUIRE_FALSE(name->empty());
  CHECK((*name)[0].ss_family == AF_INET);  // IPv4 first, like Go
}

}  // namespace
}  // namespace litefs::http
