#include "gym/checkpoint/output_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"

namespace gym::checkpoint {

namespace {

// Names gym writes at the top of output_dir: a foreign file with one of them would be overwritten.
bool gym_output_name(const std::string& n) {
  static const std::set<std::string> names = {
      "trainer_log.jsonl", "trainer_state.json", "all_results.json", "train_results.json", "eval_results.json", "gym_config.yaml",
      "generated_predictions.jsonl", "predict_results.json", "adapter_model.safetensors", "adapter_config.json",
      "model.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json", "tokenizer.json",
      "tokenizer_config.json", "runs", "completions.jsonl", "report.html"};
  if (names.count(n)) return true;
  if (n.rfind("checkpoint-", 0) == 0 || n.rfind("training_", 0) == 0) return true;
  if (n.rfind("model-", 0) == 0 && n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) return true;   // shards
  return false;
}

// A temporary of gym's own atomic writes: "<a name gym writes>.tmp[.old|.rm].<pid>". Anything else
// with ".tmp." in its name is the user's and is neither removed nor taken for gym's.
bool gym_temporary(const std::string& n) {
  const auto pos = n.find(".tmp.");
  if (pos == std::string::npos || pos == 0) return false;
  std::string pid = n.substr(pos + 5);
  for (const char* kind : {"old.", "rm."})
    if (pid.rfind(kind, 0) == 0) pid = pid.substr(std::strlen(kind));
  if (pid.empty() || pid.size() > 10 || !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  const std::string base = n.substr(0, pos);
  return gym_output_name(base) || base == kManifestName;
}

bool gym_bookkeeping(const std::string& name) { return name == kManifestName || name == kLockName || gym_temporary(name); }

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

void check_not_inside_inputs(const fs::path& output_dir, const std::vector<std::pair<std::string, fs::path>>& inputs) {
  const auto out = fs::weakly_canonical(fs::absolute(output_dir));
  for (const auto& [key, path] : inputs) {
    if (path.empty() || !fs::exists(path)) continue;
    const auto in = fs::weakly_canonical(fs::absolute(path));
    if (path_within(out, in))
      config_error("output_dir '{}' {} {} '{}': gym would write into a folder it reads; choose another output_dir",
                   output_dir.string(), out == in ? "is" : "lies inside", key, path.string());
  }
}

void lock_output_dir(const fs::path& output_dir) {
  static std::vector<int> held;   // fds stay open (and locked) until the process exits
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec) config_error("output_dir '{}': cannot create it: {}", output_dir.string(), ec.message());
  const auto path = output_dir / kLockName;
  // O_NOFOLLOW: a symlink planted there would have its target truncated and overwritten.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 && errno == ELOOP) config_error("{}: the lock file is a symbolic link; gym writes only its own file there", path.string());
  if (fd < 0) config_error("{}: cannot open the lock file: {}", path.string(), std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::string holder;
    char buf[512] = {0};
    if (::pread(fd, buf, sizeof(buf) - 1, 0) > 0) holder = buf;
    ::close(fd);
    while (!holder.empty() && std::isspace(static_cast<unsigned char>(holder.back()))) holder.pop_back();
    config_error("output_dir '{}' is in use by another gym run ({}); wait for it or choose another output_dir",
                 output_dir.string(), holder.empty() ? "holder unknown" : holder);
  }
  // A previous holder that died left its line; the kernel released its flock, so it is stale.
  const std::string line = "pid " + std::to_string(::getpid()) + " on host " + host_name() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size()))
    runtime_error("{}: cannot write the lock file: {}", path.string(), std::strerror(errno));
  held.push_back(fd);
}

std::set<std::string> entry_names(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
  return out;
}

std::set<std::string> manifest_entries(const fs::path& output_dir) {
  const auto path = output_dir / kManifestName;
  std::set<std::string> out;
  if (!fs::exists(path)) return out;
  auto j = parse_json(read_file(path), false);
  if (j.is_discarded() || !j.is_object() || !j.contains("entries") || !j["entries"].is_array())
    config_error("{}: not a gym manifest (invalid JSON or no \"entries\" list); remove it only if gym wrote it", path.string());
  for (const auto& e : j["entries"]) {
    if (!e.is_string()) config_error("{}: \"entries\" must hold file names", path.string());
    const auto name = e.get<std::string>();
    // A manifest names top-level entries only: never a path that leaves output_dir.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
      config_error("{}: entry '{}' is not a plain name", path.string(), name);
    out.insert(name);
  }
  return out;
}

void record_outputs(const fs::path& output_dir, const std::set<std::string>& names) {
  auto all = manifest_entries(output_dir);
  all.insert(names.begin(), names.end());
  for (auto it = all.begin(); it != all.end();) it = gym_bookkeeping(*it) ? all.erase(it) : std::next(it);
  nlohmann::json j = {{"written_by", "gym"}, {"entries", all}};
  write_file_atomic(output_dir / kManifestName, j.dump(1) + "\n");
}

std::vector<std::string> foreign_entries(const fs::path& output_dir) {
  const auto ours = manifest_entries(output_dir);
  std::vector<std::string> out;
  for (const auto& n : entry_names(output_dir))
    if (!ours.count(n) && !gym_bookkeeping(n)) out.push_back(n);
  return out;
}

void check_no_foreign_outputs(const fs::path& output_dir, const char* why) {
  std::vector<std::string> foreign;   // only those gym would overwrite block; the others stay untouched
  for (const auto& n : foreign_entries(output_dir))
    if (gym_output_name(n)) foreign.push_back(n);
  if (foreign.empty()) return;
  std::string list;
  for (size_t i = 0; i < foreign.size() && i < 8; ++i) list += (i ? ", " : "") + foreign[i];
  if (foreign.size() > 8) list += ", ... (" + std::to_string(foreign.size()) + " in all)";
  config_error("{}: output_dir '{}' holds files gym did not write ({}) under names gym writes; choose an empty or new output_dir",
               why, output_dir.string(), list);
}

void check_inputs_survive(const fs::path& output_dir, const std::vector<std::pair<std::string, fs::path>>& inputs) {
  const auto ours = manifest_entries(output_dir);
  const auto out = fs::weakly_canonical(fs::absolute(output_dir));
  for (const auto& [key, path] : inputs) {
    std::error_code ec;
    if (path.empty() || !fs::exists(path, ec)) continue;
    const auto in = fs::weakly_canonical(fs::absolute(path));
    if (in == out || !path_within(in, out)) continue;
    const auto top = in.lexically_relative(out).begin()->string();
    if (ours.count(top))
      config_error("{} '{}' lies in output_dir's '{}', an earlier output that this run would remove first; copy it elsewhere "
                   "or choose another output_dir",
                   key, path.string(), top);
  }
}

std::vector<std::string> clear_previous_outputs(const fs::path& output_dir) {
  check_no_foreign_outputs(output_dir, "overwrite_output_dir");
  std::vector<std::string> removed;
  for (const auto& n : manifest_entries(output_dir)) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(output_dir / n, ec))) continue;
    fs::remove_all(output_dir / n, ec);
    if (ec) runtime_error("overwrite_output_dir: cannot remove '{}': {}", (output_dir / n).string(), ec.message());
    removed.push_back(n);
  }
  remove_temporaries(output_dir);
  std::error_code ec;
  fs::remove(output_dir / kManifestName, ec);
  return removed;
}

void remove_temporaries(const fs::path& output_dir) {
  for (const auto& n : entry_names(output_dir)) {
    if (!gym_temporary(n)) continue;
    std::error_code ec;
    fs::remove_all(output_dir / n, ec);
    if (ec) runtime_error("cannot remove '{}' (left by an interrupted write): {}", (output_dir / n).string(), ec.message());
  }
}

bool holds_finished_run(const fs::path& output_dir) {
  const auto path = output_dir / "trainer_state.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) return false;
  auto j = parse_json(read_file(path), false);
  return !j.is_discarded() && j.is_object() && j.contains("gym_finished") && j["gym_finished"].is_boolean() && j["gym_finished"].get<bool>();
}

}  // namespace gym::checkpoint
