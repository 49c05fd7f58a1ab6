// gym bench tokenizer: encoding speed (MB/s on one thread) of a large varied text.
#include <chrono>
#include <iostream>

#include "cli/bench.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/io/hf_dir.h"
#include "gym/tokenizer/tokenizer.h"

namespace gym::cli {

void add_bench_tokenizer(CLI::App& bench) {
  auto model = std::make_shared<std::string>((cache_dir() / "tokenizer-qwen3").string());
  auto mb = std::make_shared<double>(4.0);
  auto* cmd = bench.add_subcommand("tokenizer", "Encoding throughput of a tokenizer.json on one thread");
  cmd->add_option("--model", *model, "Folder with tokenizer.json (default: the cached Qwen3 tokenizer)");
  cmd->add_option("--mb", *mb, "Megabytes of text to encode");
  cmd->callback([model, mb] {
    const auto tok = tokenizer::Tokenizer::from_dir(io::resolve_model_dir(*model));
    // Varied text: prose, code, digits, CJK, emoji; repeated with a counter so BPE caching is realistic.
    const std::string base =
        "The quick brown fox jumps over the lazy dog. def f(x):\n\treturn x**2  # comment\n"
        "价格是 1234.56 元，数量 42。 Émoji 🤗 naïve café. <think>reasoning</think> ";
    std::string text;
    for (int i = 0; text.size() < static_cast<size_t>(*mb * 1e6); ++i) text += base + std::to_string(i) + " word" + std::to_string(i % 997) + "\n";
    const auto s = std::chrono::steady_clock::now();
    const auto ids = tok.encode(text);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
    std::cout << nlohmann::json({{"bench", "tokenizer"}, {"bytes", text.size()}, {"tokens", ids.size()}, {"seconds", secs},
                                 {"mb_per_s", text.size() / 1e6 / secs}, {"tokens_per_s", ids.size() / secs}})
                     .dump()
              << "\n";
  });
}

}  // namespace gym::cli
