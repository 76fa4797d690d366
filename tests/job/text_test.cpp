// src/job/text.hpp: the white-space trim shared by the job parser and the
// HTTP Authorization header.
#include "src/job/text.hpp"

#include <gtest/gtest.h>

namespace batchq::job {
namespace {

TEST(Trim, DropsLeadingAndTrailingWhiteSpaceOfEveryKindAndKeepsInnerSpace) {
  EXPECT_EQ(trim(" \t\r\n\v\fBearer  abc \r\n"), "Bearer  abc");
  EXPECT_EQ(trim("application/json"), "application/json");
}

TEST(Trim, MakesAnAllBlankOrEmptyTextEmpty) {
  EXPECT_EQ(trim(" \t\n "), "");
  EXPECT_EQ(trim(""), "");
}

TEST(Trim, LeavesBytesAbove127Alone) {
  EXPECT_EQ(trim("\xc2\xa0x\xc2\xa0"), "\xc2\xa0x\xc2\xa0");
}

} // namespace
} // namespace batchq::job
