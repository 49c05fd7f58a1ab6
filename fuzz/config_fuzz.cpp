// The YAML config loader (config/loader.cpp, values.cpp, build.cpp, deepspeed.cpp): a YAML text
// and command-line overrides (one per line). Input: YAML \0 overrides.
#include <sstream>

#include "fuzz_util.h"
#include "gym/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = gym::fuzz::scratch("config");
  const auto parts = gym::fuzz::split(data, size, 2);
  std::vector<std::string> overrides;
  std::istringstream in(parts[1]);
  // Overrides come from argv: C strings, so a NUL ends one (config_fuzz found keys starting with NUL,
  // which argv cannot carry).
  for (std::string line; std::getline(in, line);) overrides.push_back(line.substr(0, line.find('\0')));
  gym::fuzz::write(dir / "config.yaml", parts[0]);
  gym::fuzz::expect_clean([&] {
    const auto rc = gym::config::load_config(dir / "config.yaml", overrides);
    (void)rc.to_yaml();
    (void)rc.to_yaml_with_origins();
  });
  return 0;
}
