#include "gym/tokenizer/chat_template.h"

#include <fmt/format.h>

#include "gym/core/error.h"

namespace gym::tokenizer {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
std::string lstrip_nl(std::string s) { return s.erase(0, s.find_first_not_of('\n') == std::string::npos ? s.size() : s.find_first_not_of('\n')); }
std::string rstrip_nl(std::string s) {
  const auto e = s.find_last_not_of('\n');
  return e == std::string::npos ? std::string() : s.substr(0, e + 1);
}
std::string strip_nl(const std::string& s) { return lstrip_nl(rstrip_nl(s)); }

// Splits "<think>r</think>c" the way the Qwen3 template does; returns {content, reasoning}.
std::pair<std::string, std::string> split_thinking(const ChatMessage& m) {
  if (m.has_reasoning) return {m.content, m.reasoning_content};
  const auto end = m.content.rfind("</think>");
  if (end == std::string::npos) return {m.content, ""};
  std::string content = lstrip_nl(m.content.substr(end + 8));
  std::string before = rstrip_nl(m.content.substr(0, m.content.find("</think>")));
  const auto open = before.rfind("<think>");
  std::string reasoning = lstrip_nl(open == std::string::npos ? before : before.substr(open + 7));
  return {content, reasoning};
}

void check_template(const std::string& name) {
  for (const auto& t : known_templates())
    if (t == name) return;
  config_error("unknown template '{}' (known: {})", name, fmt::join(known_templates(), ", "));
}

std::string render_qwen3(const std::vector<ChatMessage>& msgs, const ChatOptions& opt) {
  std::string out;
  if (!opt.tools.empty()) {
    out += "<|im_start|>system\n";
    if (!msgs.empty() && msgs[0].role == "system") out += msgs[0].content + "\n\n";
    out += "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function "
           "signatures within <tools></tools> XML tags:\n<tools>";
    for (const auto& tool : opt.tools) out += "\n" + python_json_dumps(tool);
    out += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
           "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
           "<args-json-object>}\n</tool_call><|im_end|>\n";
  } else if (!msgs.empty() && msgs[0].role == "system") {
    out += "<|im_start|>system\n" + msgs[0].content + "<|im_end|>\n";
  }
  // The last user message that is not a wrapped tool response starts the current turn.
  int64_t last_query = static_cast<int64_t>(msgs.size()) - 1;
  for (int64_t i = last_query; i >= 0; --i) {
    const auto& m = msgs[static_cast<size_t>(i)];
    if (m.role == "user" && !(starts_with(m.content, "<tool_response>") && ends_with(m.content, "</tool_response>"))) {
      last_query = i;
      break;
    }
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    const bool last = i + 1 == msgs.size();
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      auto [content, reasoning] = split_thinking(m);
      if (static_cast<int64_t>(i) > last_query && (last || !reasoning.empty()))
        out += "<|im_start|>assistant\n<think>\n" + strip_nl(reasoning) + "\n</think>\n\n" + lstrip_nl(content);
      else
        out += "<|im_start|>assistant\n" + content;
      for (size_t k = 0; k < m.tool_calls.size(); ++k) {
        if ((k == 0 && !content.empty()) || k > 0) out += "\n";
        auto call = m.tool_calls[k].contains("function") ? m.tool_calls[k]["function"] : m.tool_calls[k];
        out += "<tool_call>\n{\"name\": \"" + call.value("name", std::string()) + "\", \"arguments\": ";
        const auto& args = call.contains("arguments") ? call["arguments"] : nlohmann::ordered_json::object();
        out += args.is_string() ? args.get<std::string>() : python_json_dumps(args);
        out += "}\n</tool_call>";
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || msgs[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (last || msgs[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (opt.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!opt.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

std::string render_chatml(const std::vector<ChatMessage>& msgs, const ChatOptions& opt) {
  std::string out;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    if (m.role == "tool") {
      out += "<|im_start|>user\n<tool_response>\n" + m.content + "\n</tool_response><|im_end|>\n";
      continue;
    }
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  if (opt.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace

const std::vector<std::string>& known_templates() {
  static const std::vector<std::string> names = {"qwen3", "qwen3_nothink", "empty"};
  return names;
}

std::string render_chat(const std::string& name, const std::vector<ChatMessage>& messages, const ChatOptions& options) {
  check_template(name);
  if (name == "qwen3") return render_qwen3(messages, options);
  if (name == "qwen3_nothink") return render_chatml(messages, options);
  std::string out;
  for (const auto& m : messages) out += m.content;
  return out;
}

std::vector<SftPair> render_sft(const std::string& name, const std::string& system, const std::vector<ChatMessage>& turns,
                                bool enable_thinking, const std::string& eos_text) {
  check_template(name);
  std::vector<SftPair> pairs;
  const bool chatml = name != "empty";
  const bool reasoning = name == "qwen3";
  std::string prompt = chatml && !system.empty() ? "<|im_start|>system\n" + system + "<|im_end|>\n" : system;
  const std::string empty_thought = "<think>\n\n</think>\n\n";
  // The index of the last assistant turn: earlier turns lose their CoT.
  size_t last_assistant = 0;
  for (size_t i = 0; i < turns.size(); ++i)
    if (turns[i].role == "assistant") last_assistant = i;
  for (size_t i = 0; i < turns.size(); ++i) {
    const auto& m = turns[i];
    if (m.role != "assistant") {
      if (!chatml) {
        prompt += m.content;
      } else if (m.role == "tool") {
        prompt += "<|im_start|>user\n<tool_response>\n" + m.content + "\n</tool_response><|im_end|>\n<|im_start|>assistant\n";
      } else {
        prompt += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n<|im_start|>assistant\n";
      }
      continue;
    }
    std::string response = m.content;
    if (m.has_reasoning && !m.reasoning_content.empty()) response = "<think>\n" + m.reasoning_content + "\n</think>\n\n" + m.content;
    if (reasoning) {
      const bool has_cot = response.find("<think>") != std::string::npos && response.find("</think>") != std::string::npos;
      if (!enable_thinking || i != last_assistant) {
        if (has_cot) response = lstrip_nl(response.substr(response.rfind("</think>") + 8));
        if (!enable_thinking) prompt += empty_thought;
        else if (i != last_assistant) response = empty_thought + response;
      } else if (!has_cot) {
        response = empty_thought + response;
      }
    }
    response += chatml ? "<|im_end|>\n" : eos_text;
    pairs.push_back({prompt, response});
    prompt.clear();
  }
  return pairs;
}

std::string python_json_dumps(const nlohmann::ordered_json& v) {
  switch (v.type()) {
    case nlohmann::ordered_json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        out += nlohmann::ordered_json(it.key()).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + ": " +
               python_json_dumps(*it);
      }
      return out + "}";
    }
    case nlohmann::ordered_json::value_t::array: {
      std::string out = "[";
      for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + python_json_dumps(v[i]);
      return out + "]";
    }
    default:
      return v.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
}

}  // namespace gym::tokenizer
