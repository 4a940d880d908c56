// Text forms of TXIDs, positions and LTX file names.
#include "ltx/pos.h"

#include <doctest.h>

namespace litefs::ltx {
namespace {

TEST_CASE("TXIDs are 16 lowercase hex digits") {
  CHECK(FormatTXID(0) == "0000000000000000");
  CHECK(FormatTXID(0x2a) == "000000000000002a");
  CHECK(FormatTXID(UINT64_MAX) == "ffffffffffffffff");
  CHECK(ParseTXID("000000000000002a") == uint64_t(0x2a));
  CHECK(ParseTXID("000000000000002A") == uint64_t(0x2a));  // Go's ParseUint accepts it
  CHECK(ParseTXID("ffffffffffffffff") == UINT64_MAX);
  CHECK_FALSE(ParseTXID("2a").has_value());
  CHECK_FALSE(ParseTXID("000000000000002a0").has_value());
  CHECK_FALSE(ParseTXID("00000000000000x2").has_value());
  CHECK_FALSE(ParseTXID("+00000000000002a").has_value());
  CHECK_FALSE(ParseTXID("").has_value());
}

TEST_CASE("checksums print like TXIDs") {
  CHECK(FormatChecksum(0x837729c5a4821b1a) == "837729c5a4821b1a");
  CHECK(FormatChecksum(0) == "0000000000000000");
}

TEST_CASE("positions are <txid>/<checksum>") {
  const Pos pos{2, 0xee32fe3749230f90};
  CHECK(FormatPos(pos) == "0000000000000002/ee32fe3749230f90");
  CHECK(ParsePos("0000000000000002/ee32fe3749230f90") == pos);
  CHECK(FormatPos(Pos{}) == "0000000000000000/0000000000000000");
  CHECK(ParsePos("0000000000000000/0000000000000000")->IsZero());
  CHECK_FALSE(pos.IsZero());
  CHECK_FALSE(ParsePos("0000000000000002-ee32fe3749230f90").has_value());
  CHECK_FALSE(ParsePos("0000000000000002/ee32fe3749230f9").has_value());
  CHECK_FALSE(ParsePos("0000000000000002/ee32fe3749230f9g").has_value());
  CHECK_FALSE(ParsePos("").has_value());
}

TEST_CASE("LTX file names are <min>-<max>.ltx, lowercase only") {
  CHECK(FormatFileName(1, 2) == "0000000000000001-0000000000000002.ltx");
  auto range = ParseFileName("00000000000000ff-0000000000000100.ltx");
  REQUIRE(range.has_value());
  CHECK(range->min_txid == 0xff);
  CHECK(range->max_txid == 0x100);
  CHECK_FALSE(ParseFileName("00000000000000FF-0000000000000100.ltx").has_value());
  CHECK_FALSE(ParseFileName("0000000000000001-0000000000000002.ltx.tmp").has_value());
  CHECK_FALSE(ParseFileName("0000000000000001_0000000000000002.ltx").has_value());
  CHECK_FALSE(ParseFileName("000000000000001-0000000000000002.ltx").has_value());
  CHECK_FALSE(ParseFileName("0000000000000001-0000000000000002.LTX").has_value());
  CHECK_FALSE(ParseFileName("").has_value());
}

}  // namespace
}  // namespace litefs::ltx
