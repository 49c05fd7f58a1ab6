#include <gtest/gtest.h>

#include "gym/core/error.h"
#include "gym/core/fs.h"

TEST(Core, ErrorKindsMapToExitCodes) {
  try {
    gym::config_error("bad key '{}'", "x");
    FAIL();
  } catch (const gym::Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_STREQ(e.what(), "bad key 'x'");
  }
  try {
    gym::runtime_error("boom {}", 1);
    FAIL();
  } catch (const gym::Error& e) {
    EXPECT_EQ(e.exit_code(), 1);
  }
}

TEST(Core, AtomicWriteRoundTrips) {
  auto dir = gym::fs::temp_directory_path() / "gym_core_test";
  gym::fs::remove_all(dir);
  gym::write_file_atomic(dir / "a.txt", "hello");
  EXPECT_EQ(gym::read_file(dir / "a.txt"), "hello");
  EXPECT_THROW(gym::read_file(dir / "missing.txt"), gym::Error);
  gym::fs::remove_all(dir);
}
