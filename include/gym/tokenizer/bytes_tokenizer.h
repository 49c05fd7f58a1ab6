// A byte-level tokenizer for toy models: the 256 bytes plus the ChatML / Qwen3 special tokens.
#pragma once
#include <filesystem>

namespace gym::tokenizer {

// Writes tokenizer.json (Qwen's NFC + Split regex + ByteLevel pipeline, BPE without merges,
// ids 0..255 = bytes) and tokenizer_config.json (eos <|im_end|>, pad <|endoftext|>).
// Added tokens take ids 256..264, so it fits any vocab_size >= 265.
void write_bytes_tokenizer(const std::filesystem::path& dir);

}  // namespace gym::tokenizer
