// The one base64 coder (net/base64.h): RFC 4648 vectors, refusals, and the spare capacity the buses ask for.
#include "net/base64.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace apilake {
namespace {

TEST(Base64, MatchesTheRfcVectorsBothWays) {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : vectors) {
    EXPECT_EQ(base64_encode(plain), coded);
    EXPECT_EQ(base64_decode(coded), plain);
  }
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  EXPECT_EQ(base64_decode(base64_encode(bytes)), bytes);
}

TEST(Base64, RefusesMalformedInput) {
  EXPECT_THROW(base64_decode("Zm9"), std::invalid_argument);        // not a multiple of 4
  EXPECT_THROW(base64_decode("Zm 9"), std::invalid_argument);       // whitespace
  EXPECT_THROW(base64_decode("Zm=v"), std::invalid_argument);       // padding inside
  EXPECT_THROW(base64_decode("Zm9v!A=="), std::invalid_argument);   // outside the alphabet
}

TEST(Base64, DecodeReservesTheSpareCapacityAskedFor) {
  EXPECT_GE(base64_decode("", 64).capacity(), 64u);
  for (const std::size_t spare : {0u, 1u, 64u, 1000u}) {
    const auto out = base64_decode(base64_encode(std::string(3001, 'p')), spare);
    EXPECT_EQ(out, std::string(3001, 'p'));
    EXPECT_GE(out.capacity() - out.size(), spare);
  }
}

}  // namespace
}  // namespace apilake
