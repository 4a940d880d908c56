// See cli_promote.h.
#include "sidecar/cli_promote.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "sidecar/duration.h"

namespace litefs {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// One request; the HTTP status (0 on a transport error, described in *body).
long Request(const std::string& method, const std::string& url, std::string* body) {
  body->clear();
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
  char err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  } else {
    *body = method + " " + url + ": " + (*err ? err : curl_easy_strerror(rc));
  }
  curl_easy_cleanup(curl);
  while (!body->empty() && body->back() == '\n') body->pop_back();
  return status;
}

}  // namespace

int PromoteMain(const std::vector<std::string>& args) {
  const char* usage =
      "usage: litefs promote [-url URL] [-timeout DURATION]\n"
      "\n"
      "Asks a candidate node (etcd lease) to take the lease from the current primary\n"
      "(POST /promote). The primary stops taking writes, the candidate catches up with\n"
      "its last commits and takes over; nothing acknowledged is lost. Waits until the\n"
      "node reports itself primary.\n"
      "\n"
      "  -url URL            the candidate's node API (default http://localhost:20202)\n"
      "  -timeout DURATION   how long to wait (default 10s)\n";
  std::string url = "http://localhost:20202";
  std::chrono::milliseconds timeout(10000);
  for (size_t i = 0; i < args.size(); i++) {
    std::string a = args[i].rfind("--", 0) == 0 ? args[i].substr(1) : args[i];
    std::string value;
    if ((a == "-url" || a == "-timeout") && i + 1 < args.size()) {
      value = args[++i];
    } else if (a.rfind("-url=", 0) == 0 || a.rfind("-timeout=", 0) == 0) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
    } else if (a == "-h" || a == "-help") {
      fprintf(stdout, "%s", usage);
      return 0;
    } else {
      fprintf(stderr, "%s", usage);
      return 2;
    }
    if (a == "-url") {
      url = value;
    } else {
      Result<Duration> d = ParseGoDuration(value);
      if (!d.ok() || d->count() <= 0) {
        fprintf(stderr, "litefs promote: -timeout %s: not a positive duration\n", value.c_str());
        return 2;
      }
      timeout = *d;
    }
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  std::string body;
  long status = Request("POST", url + "/promote", &body);
  if (status != 200) {
    fprintf(stderr, "litefs promote: %s%s\n", status ? ("HTTP " + std::to_string(status) + ": ").c_str() : "",
            body.c_str());
    return 1;
  }
  // The handoff completes asynchronously: wait (bounded) for the new role.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Request("GET", url + "/info", &body) == 200) {
      nlohmann::json info = nlohmann::json::parse(body, nullptr, false);
      if (info.is_object() && info.value("isPrimary", false)) {
        printf("%s is the primary\n", url.c_str());
        return 0;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  fprintf(stderr, "litefs promote: %s did not become the primary within %lld ms\n", url.c_str(),
          static_cast<long long>(timeout.count()));
  return 1;
}

}  // namespace litefs
