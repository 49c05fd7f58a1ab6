// One exception type for every failure gym reports to a user.
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace gym {

// What kind of failure: decides the process exit code (usage/config → 2, runtime → 1).
enum class ErrorKind { Config, Runtime };

class Error : public std::runtime_error {
 public:
  // NUL bytes (from a file's key or value) are written as \0: what() is a C string and would end there.
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(without_nul(message)), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return kind_ == ErrorKind::Config ? 2 : 1; }

 private:
  static std::string without_nul(std::string s) {
    for (size_t i = s.find('\0'); i != std::string::npos; i = s.find('\0', i + 2)) s.replace(i, 1, "\\0");
    return s;
  }
  ErrorKind kind_;
};

// A bad config, bad command line or bad user-supplied file: exit code 2.
template <typename... Args>
[[noreturn]] void config_error(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(ErrorKind::Config, fmt::format(f, std::forward<Args>(args)...));
}

// Anything else that stops a run: exit code 1.
template <typename... Args>
[[noreturn]] void runtime_error(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(ErrorKind::Runtime, fmt::format(f, std::forward<Args>(args)...));
}

#define GYM_CHECK(cond, ...)                     \
  do {                                           \
    if (!(cond)) ::gym::runtime_error(__VA_ARGS__); \
  } while (0)

}  // namespace gym
