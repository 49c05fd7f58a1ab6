// Native chat templates (no Jinja): qwen3 (the Qwen3 HF template: thinking, tools),
// qwen3_nothink (plain ChatML) and empty (raw text); plus LLaMA-Factory's SFT rendering.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace gym::tokenizer {

struct ChatMessage {
  std::string role;                 // system | user | assistant | tool
  std::string content;
  std::string reasoning_content;    // used when has_reasoning
  bool has_reasoning = false;
  nlohmann::ordered_json tool_calls = nlohmann::ordered_json::array();   // [{name, arguments}] or [{function: {...}}]
};

struct ChatOptions {
  bool add_generation_prompt = false;
  bool enable_thinking = true;
  nlohmann::ordered_json tools = nlohmann::ordered_json::array();
};

// The conversation as Hugging Face's apply_chat_template renders it with the model's template.
std::string render_chat(const std::string& template_name, const std::vector<ChatMessage>& messages,
                        const ChatOptions& options);

// One trained exchange: the prompt part (not trained) and the response part (trained).
struct SftPair {
  std::string prompt;
  std::string response;
};

// LLaMA-Factory's supervised rendering: system + turns (alternating user/assistant, tool results
// as user turns) → one (prompt, response) pair per assistant turn, so prompts can be masked.
// qwen3: a response without CoT gets the empty thought "<think>\n\n</think>\n\n" prepended
// (trained) when enable_thinking, else the empty thought goes to the end of the prompt and any
// CoT is stripped; CoT in earlier turns is removed.
std::vector<SftPair> render_sft(const std::string& template_name, const std::string& system,
                                const std::vector<ChatMessage>& turns, bool enable_thinking, const std::string& eos_text);

// json.dumps(value, ensure_ascii=False) as Python writes it (", " and ": " separators).
std::string python_json_dumps(const nlohmann::ordered_json& value);

const std::vector<std::string>& known_templates();

}  // namespace gym::tokenizer
