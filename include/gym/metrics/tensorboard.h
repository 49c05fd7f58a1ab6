// TensorBoard event files written by hand (no protobuf or TensorFlow library): TFRecord framing
// around tensorflow.Event protos carrying scalar summaries, as the HF TensorBoard callback writes.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace gym::metrics {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord's mask of it.
uint32_t crc32c(const void* data, size_t size);
uint32_t masked_crc32c(const void* data, size_t size);

// One TFRecord: uint64 length (LE), masked CRC32C of those 8 bytes, the data, masked CRC32C of the data.
std::string tfrecord(const std::string& data);

// The protobuf bytes of a tensorflow.Event (event.proto): wall_time, step, and either a
// file_version or a Summary of {tag, simple_value} values (summary.proto).
std::string event_file_version(double wall_time, const std::string& version);
std::string event_scalars(double wall_time, int64_t step, const std::map<std::string, float>& values);

// HF's TensorBoard tags: eval_x → eval/x, test_x → test/x, everything else train/x; gym's lr is
// learning_rate (as in trainer_state.json).
std::string tensorboard_tag(const std::string& key);

// events.out.tfevents.<unix time>.<host>.<pid>.<n> in `dir`: the file_version event first, then one
// event per add_scalars, flushed at once (a killed run keeps every logged step).
class EventWriter {
 public:
  explicit EventWriter(const std::filesystem::path& dir);
  void add_scalars(int64_t step, const std::map<std::string, float>& tagged_values);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

// HF's default logging_dir: output_dir/runs/<Mon DD_HH-MM-SS>_<host>.
std::filesystem::path default_logging_dir(const std::filesystem::path& output_dir);

}  // namespace gym::metrics
