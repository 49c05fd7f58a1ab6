#include "gym/metrics/trainer_log.h"

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"

namespace gym::metrics {

std::string format_hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  const auto s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

std::vector<nlohmann::json> read_trainer_log(const std::filesystem::path& file, int64_t up_to) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto j = parse_json(line, false);
    if (!j.is_object()) continue;
    const int64_t step = j.contains("current_steps") && j["current_steps"].is_number_integer() ? j["current_steps"].get<int64_t>() : 0;
    if (step <= up_to) lines.push_back(std::move(j));
  }
  return lines;
}

TrainerLog::TrainerLog(const std::filesystem::path& output_dir, int64_t total_steps, bool fresh, int64_t start_step)
    : path_(output_dir / "trainer_log.jsonl"), total_steps_(total_steps), start_step_(start_step),
      start_(std::chrono::steady_clock::now()) {
  std::filesystem::create_directories(output_dir);
  // Keep the lines up to the resumed step; later ones belong to the interrupted run.
  if (!fresh) history_ = read_trainer_log(path_, start_step);
  // Rewritten atomically (a kill leaves the old log whole; a symlink there is replaced, its target
  // never written), then appended to.
  std::string kept;
  for (const auto& j : history_) kept += j.dump() + "\n";
  write_file_atomic(path_, kept);
  out_.open(path_, std::ios::app);
  if (!out_) runtime_error("cannot write {}", path_.string());
}

double TrainerLog::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double TrainerLog::remaining_seconds(int64_t step) const {
  const int64_t done = std::max<int64_t>(1, step - start_step_);
  return elapsed_seconds() / static_cast<double>(done) * static_cast<double>(std::max<int64_t>(0, total_steps_ - step));
}

void TrainerLog::log(int64_t step, double epoch, const std::map<std::string, double>& metrics) {
  const double elapsed = elapsed_seconds();
  const double remaining = remaining_seconds(step);
  nlohmann::json j;
  j["current_steps"] = step;
  j["total_steps"] = total_steps_;
  for (const auto& [k, v] : metrics) {
    if (std::isfinite(v)) j[k] = v;   // null fields are omitted, as in LLaMA-Factory
  }
  j["epoch"] = std::round(epoch * 100.0) / 100.0;
  j["percentage"] = std::round(10000.0 * static_cast<double>(step) / std::max<int64_t>(1, total_steps_)) / 100.0;
  j["elapsed_time"] = format_hms(elapsed);
  j["remaining_time"] = format_hms(remaining);
  out_ << j.dump() << "\n";
  out_.flush();
  if (tensorboard_) {
    std::map<std::string, float> scalars;
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it->is_number() && it.key() != "current_steps" && it.key() != "total_steps" && it.key() != "percentage")
        scalars[tensorboard_tag(it.key())] = it->get<float>();
    tensorboard_->add_scalars(step, scalars);
  }
  history_.push_back(std::move(j));
}

void TrainerLog::enable_tensorboard(const std::filesystem::path& logging_dir) {
  tensorboard_ = std::make_unique<EventWriter>(logging_dir);
}

Progress::Progress(int64_t total_steps) : total_(total_steps), tty_(::isatty(STDERR_FILENO) != 0) {}

void Progress::update(int64_t step, const std::map<std::string, double>& metrics, double elapsed, double remaining) {
  std::string& fields = fields_;
  fields.clear();
  for (const char* k : {"loss", "reward", "lr", "tokens_per_second"}) {
    auto it = metrics.find(k);
    if (it == metrics.end()) continue;
    const char* name = std::string(k) == "tokens_per_second" ? "tok/s" : k;
    fields += std::string(k) == "lr" ? fmt::format(" | {} {:.2e}", name, it->second)
                                     : fmt::format(" | {} {:.4g}", name, it->second);
  }
  draw(step, elapsed, remaining);
}

void Progress::tick(int64_t step, double elapsed, double remaining) {
  if (tty_) draw(step, elapsed, remaining);
}

void Progress::draw(int64_t step, double elapsed, double remaining) {
  const std::string& fields = fields_;
  const double frac = total_ > 0 ? static_cast<double>(step) / static_cast<double>(total_) : 1.0;
  if (tty_) {
    const int width = 24, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), ' ');
    std::fprintf(stderr, "\r[%s] %lld/%lld %3.0f%%%s | %s<%s  ", bar.c_str(), static_cast<long long>(step),
                 static_cast<long long>(total_), frac * 100.0, fields.c_str(), format_hms(elapsed).c_str(),
                 format_hms(remaining).c_str());
    drawn_ = true;
  } else {
    std::fprintf(stderr, "step %lld/%lld (%.0f%%)%s | elapsed %s | eta %s\n", static_cast<long long>(step),
                 static_cast<long long>(total_), frac * 100.0, fields.c_str(), format_hms(elapsed).c_str(),
                 format_hms(remaining).c_str());
  }
  std::fflush(stderr);
}

void Progress::finish() {
  if (tty_ && drawn_) std::fprintf(stderr, "\n");
}

// ---- TensorBoard event files (gym/metrics/tensorboard.h), the sink of TrainerLog::log
namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// Protobuf wire format: a key is (field_number << 3) | wire_type; 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, uint32_t field, uint32_t wire) { put_varint(out, (static_cast<uint64_t>(field) << 3) | wire); }
template <typename T>
void put_le(std::string& out, T v) {   // little endian, as protobuf's fixed32/fixed64 and TFRecord
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF));
}
void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
// tensorflow/core/util/event.proto, message Event:
//   double wall_time = 1;  int64 step = 2;  oneof what { string file_version = 3; bytes graph_def = 4; Summary summary = 5; ... }
std::string event_header(double wall_time, int64_t step) {
  std::string e;
  uint64_t bits;
  std::memcpy(&bits, &wall_time, 8);
  put_key(e, 1, 1);   // wall_time: fixed64
  put_le(e, bits);
  put_key(e, 2, 0);   // step: varint (int64, two's complement for negatives)
  put_varint(e, static_cast<uint64_t>(step));
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  const auto& t = crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;   // tensorflow/core/lib/hash/crc32c.h: Mask
}

std::string tfrecord(const std::string& data) {
  std::string len;
  put_le(len, static_cast<uint64_t>(data.size()));
  std::string out = len;
  put_le(out, masked_crc32c(len.data(), len.size()));
  out += data;
  put_le(out, masked_crc32c(data.data(), data.size()));
  return out;
}

std::string event_file_version(double wall_time, const std::string& version) {
  std::string e = event_header(wall_time, 0);
  put_bytes(e, 3, version);   // file_version
  return e;
}

std::string event_scalars(double wall_time, int64_t step, const std::map<std::string, float>& values) {
  // tensorflow/core/framework/summary.proto:
  //   message Summary { repeated Value value = 1; }
  //   message Summary.Value { string tag = 1; oneof value { float simple_value = 2; ... } }   (node_name = 7, metadata = 9 unused)
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string value;
    put_bytes(value, 1, tag);
    put_key(value, 2, 5);   // simple_value: fixed32
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    put_le(value, bits);
    put_bytes(summary, 1, value);
  }
  std::string e = event_header(wall_time, step);
  put_bytes(e, 5, summary);   // summary
  return e;
}

std::string tensorboard_tag(const std::string& key) {
  if (key.rfind("eval_", 0) == 0) return "eval/" + key.substr(5);
  if (key.rfind("test_", 0) == 0) return "test/" + key.substr(5);
  return "train/" + (key == "lr" ? std::string("learning_rate") : key);
}

namespace {
double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
std::string host_name() {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) return "localhost";
  return host;
}
}  // namespace

EventWriter::EventWriter(const std::filesystem::path& dir) {
  static std::atomic<int> counter{0};
  std::filesystem::create_directories(dir);
  const auto now = static_cast<long long>(wall_now());
  // tensorboardX / torch.utils.tensorboard: events.out.tfevents.{time:010d}.{host}.{pid}.{n}
  do {
    path_ = dir / fmt::format("events.out.tfevents.{:010d}.{}.{}.{}", now, host_name(), static_cast<long>(::getpid()), counter++);
  } while (std::filesystem::exists(path_));
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) runtime_error("cannot write {}", path_.string());
  out_ << tfrecord(event_file_version(wall_now(), "brain.Event:2"));
  out_.flush();
}

void EventWriter::add_scalars(int64_t step, const std::map<std::string, float>& tagged_values) {
  out_ << tfrecord(event_scalars(wall_now(), step, tagged_values));
  out_.flush();
  if (!out_) runtime_error("cannot append to {}", path_.string());
}

std::filesystem::path default_logging_dir(const std::filesystem::path& output_dir) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char stamp[64];
  std::strftime(stamp, sizeof stamp, "%b%d_%H-%M-%S", &tm);   // HF: datetime.now().strftime("%b%d_%H-%M-%S")
  return output_dir / "runs" / (std::string(stamp) + "_" + host_name());
}

}  // namespace gym::metrics
