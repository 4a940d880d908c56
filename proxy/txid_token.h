// The read-your-writes token: which database positions a client has written,
// carried from a write's response to the client's next reads.
//
// LiteFS's form stays valid: cookie `__txid=<16 hex digits>` names the TXID of
// `proxy.db`. Our full token (cookie `__litefs`, header `Litefs-Txid`) names
// any number of databases and the primary that issued it:
//
//     app.db=0000000000000005&users.db=000000000000002a&@9F3A6C0D12E4B871
//
// Entries are separated by `&`. `<db>=<16 hex>` is a database (name
// percent-encoded where it holds `&`, `=`, `%`, `@`, `;`, `,`, space or a
// control character); a bare `<16 hex>` entry means `proxy.db`; `@<16 hex>`
// is the issuing primary's node ID, which lets a replica recognise a token
// from a primary that has since been replaced (see reverse_proxy.h).
// Unparseable entries are ignored, as LiteFS ignores a malformed cookie.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace litefs::proxy {

struct TxidToken {
  struct Entry {
    std::string db;  // "" in a parsed token means proxy.db
    uint64_t txid = 0;
  };
  std::vector<Entry> entries;
  std::optional<uint64_t> issuer;  // node ID of the primary that issued it

  bool empty() const { return entries.empty(); }
};

// Exactly 16 hex digits (either case), as LiteFS's cookie holds; nullopt otherwise.
std::optional<uint64_t> ParseHex16(std::string_view s);
std::string FormatHex16(uint64_t v);  // lowercase, zero-padded

TxidToken ParseTxidToken(std::string_view text);
std::string FormatTxidToken(const TxidToken& token);

// The value of cookie `name` in a Cookie header value ("a=1; b=2"), if present.
std::optional<std::string_view> FindCookie(std::string_view cookie_header, std::string_view name);

}  // namespace litefs::proxy
