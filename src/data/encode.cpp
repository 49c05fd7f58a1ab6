// Conversations → token ids: SFT examples with prompt masking and LF's cutoff rule; RL prompts.
#include <fmt/format.h>

#include "gym/data/dataset.h"
#include "gym/core/error.h"

namespace gym::data {

namespace {

// LLaMA-Factory's infer_seqlen: split a budget between source and target, favouring the target.
std::pair<int64_t, int64_t> infer_seqlen(int64_t source_len, int64_t target_len, int64_t cutoff) {
  int64_t max_target;
  if (target_len * 2 < cutoff) max_target = cutoff;
  else if (source_len * 2 < cutoff) max_target = cutoff - source_len;
  else max_target = static_cast<int64_t>(static_cast<double>(cutoff) * (static_cast<double>(target_len) / static_cast<double>(source_len + target_len)));
  const int64_t new_target = std::min(max_target, target_len);
  const int64_t max_source = std::max<int64_t>(cutoff - new_target, 0);
  return {std::min(max_source, source_len), new_target};
}

}  // namespace

SftExample encode_sft(const Conversation& c, const tokenizer::Tokenizer& tok, const RenderOptions& o) {
  const std::string system = c.system.empty() ? o.default_system : c.system;
  const std::string eos = tok.id_to_token(tok.eos_id());
  auto pairs = tokenizer::render_sft(o.template_name, system, c.turns, o.enable_thinking, eos);
  SftExample ex;
  int64_t total = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (total >= o.cutoff_len) break;
    auto src = tok.encode(pairs[i].prompt);
    auto tgt = tok.encode(pairs[i].response);
    auto [sl, tl] = infer_seqlen(static_cast<int64_t>(src.size()), static_cast<int64_t>(tgt.size()), o.cutoff_len - total);
    src.resize(static_cast<size_t>(sl));
    tgt.resize(static_cast<size_t>(tl));
    total += sl + tl;
    const bool train_this = !o.mask_history || i + 1 == pairs.size();
    for (auto id : src) {
      ex.input_ids.push_back(id);
      ex.labels.push_back(o.train_on_prompt ? id : -100);
    }
    for (auto id : tgt) {
      ex.input_ids.push_back(id);
      ex.labels.push_back(train_this ? id : -100);
    }
  }
  return ex;
}

std::vector<SftExample> pack_examples(const std::vector<SftExample>& examples, int64_t cutoff_len) {
  std::vector<SftExample> packed;
  SftExample cur;
  for (const auto& e : examples) {
    if (!cur.input_ids.empty() && static_cast<int64_t>(cur.input_ids.size() + e.input_ids.size()) > cutoff_len) {
      packed.push_back(std::move(cur));
      cur = {};
    }
    cur.input_ids.insert(cur.input_ids.end(), e.input_ids.begin(), e.input_ids.end());
    cur.labels.insert(cur.labels.end(), e.labels.begin(), e.labels.end());
  }
  if (!cur.input_ids.empty()) packed.push_back(std::move(cur));
  return packed;
}

RlPrompt encode_rl_prompt(const Conversation& c, const tokenizer::Tokenizer& tok, const RenderOptions& o,
                          int64_t max_prompt_length) {
  std::vector<tokenizer::ChatMessage> msgs;
  const std::string system = c.system.empty() ? o.default_system : c.system;
  if (!system.empty()) {
    tokenizer::ChatMessage s;
    s.role = "system";
    s.content = system;
    msgs.push_back(s);
  }
  msgs.insert(msgs.end(), c.turns.begin(), c.turns.end());
  tokenizer::ChatOptions co;
  co.add_generation_prompt = true;
  co.enable_thinking = o.enable_thinking;
  co.tools = c.tools;
  RlPrompt p;
  p.prompt_text = tokenizer::render_chat(o.template_name, msgs, co);
  p.prompt_ids = tok.encode(p.prompt_text);
  if (static_cast<int64_t>(p.prompt_ids.size()) > max_prompt_length)   // TRL truncates from the left
    p.prompt_ids.erase(p.prompt_ids.begin(), p.prompt_ids.end() - max_prompt_length);
  p.extra = c.extra;
  return p;
}

}  // namespace gym::data

namespace gym::data {

std::string preview_example(const SftExample& e, const tokenizer::Tokenizer& tok) {
  std::string labels;
  std::vector<int64_t> run;   // trained ids not yet decoded
  int64_t masked = 0;
  auto flush = [&] {
    if (!run.empty()) labels += tok.decode(run, false), run.clear();
    if (masked > 0) labels += "[-100 ×" + std::to_string(masked) + "]", masked = 0;
  };
  for (auto l : e.labels) {
    if (l == -100) {
      if (!run.empty()) flush();
      ++masked;
    } else {
      if (masked > 0) flush();
      run.push_back(l);
    }
  }
  flush();
  return fmt::format("input_ids:\n[{}]\ninputs:\n{}\nlabel_ids:\n[{}]\nlabels:\n{}", fmt::join(e.input_ids, ", "),
                     tok.decode(e.input_ids, false), fmt::join(e.labels, ", "), labels);
}

}  // namespace gym::data
