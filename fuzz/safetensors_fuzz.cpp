// The safetensors reader (io/safetensors.cpp): header length, JSON header, dtypes, shapes and
// offsets of an arbitrary file; every tensor of a file that opens is loaded and summed.
#include "fuzz_util.h"
#include "gym/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = gym::fuzz::scratch("safetensors") / "model.safetensors";
  gym::fuzz::write(path, std::string(reinterpret_cast<const char*>(data), size));
  gym::fuzz::expect_clean([&] {
    gym::io::SafeTensorsFile f(path);
    for (const auto& info : f.tensors()) {
      (void)f.metadata();
      auto t = f.load(info.name);
      if (t.numel() != 0 && t.scalar_type() != torch::kBool) (void)t.to(torch::kFloat64).sum().item<double>();
    }
  });
  return 0;
}
