// gym help [COMMAND...], gym completion bash, and "did you mean" for a mistyped command.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "config/schema.h"
#include "gym/core/error.h"

namespace gym::cli {

namespace {

// Names of the app's subcommands (without the hidden ones), in registration order.
std::vector<std::string> command_names(CLI::App& app) {
  std::vector<std::string> names;
  for (const auto* sub : app.get_subcommands([](CLI::App* s) { return !s->get_group().empty(); })) names.push_back(sub->get_name());
  return names;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string bash_completion(CLI::App& app) {
  std::string commands, keys, bench;
  for (const auto& n : command_names(app)) commands += n + " ";
  for (const auto& k : config::key_table()) keys += std::string("--") + k.name + " ";
  if (auto* b = app.get_subcommand("bench"))
    for (const auto* sub : b->get_subcommands([](CLI::App*) { return true; })) bench += sub->get_name() + " ";
  return "# bash completion for gym: eval \"$(gym completion bash)\" (or save it under\n"
         "# /etc/bash_completion.d/gym). Completes commands, YAML configs and config keys as overrides.\n"
         "_gym() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]}\n"
         "  if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
         "    COMPREPLY=($(compgen -W \"" + commands + "--version --help\" -- \"$cur\")); return\n"
         "  fi\n"
         "  case \"$cmd\" in\n"
         "    train|validate)\n"
         "      if [[ $cur == --* ]]; then\n"
         "        COMPREPLY=($(compgen -W \"" + keys + "--nproc_per_node --nnodes --node_rank --master_addr --master_port --help\" -- \"$cur\"))\n"
         "      else\n"
         "        COMPREPLY=($(compgen -f -X '!*.@(yaml|yml)' -- \"$cur\") $(compgen -d -- \"$cur\"))\n"
         "      fi ;;\n"
         "    bench) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W \"" + bench + "\" -- \"$cur\")) ;;\n"
         "    help) COMPREPLY=($(compgen -W \"" + commands + "\" -- \"$cur\")) ;;\n"
         "    completion) COMPREPLY=($(compgen -W \"bash\" -- \"$cur\")) ;;\n"
         "    *) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
         "  esac\n"
         "}\n"
         "shopt -s extglob 2>/dev/null\n"
         "complete -o filenames -F _gym gym\n";
}

}  // namespace

void add_help_commands(CLI::App& app) {
  auto* help = app.add_subcommand("help", "Show the commands, or one command's options: gym help train");
  auto topic = std::make_shared<std::vector<std::string>>();
  help->add_option("command", *topic, "A command (and subcommand), e.g. train or bench sft");
  help->callback([&app, topic] {
    CLI::App* target = &app;
    std::string prev;   // "gym train" for the usage line
    for (const auto& name : *topic) {
      prev += (prev.empty() ? "" : " ") + target->get_name();
      CLI::App* next = nullptr;
      try {
        next = target->get_subcommand(name);
      } catch (const CLI::OptionNotFound&) {
      }
      if (!next) config_error("gym help: no command '{}'{}", name, did_you_mean(*target, name));
      target = next;
    }
    // The formatter directly: App::help() of the root would describe the selected command (help).
    std::cout << target->get_formatter()->make_help(target, prev.empty() ? target->get_name() : prev + " " + target->get_name(),
                                                    CLI::AppFormatMode::Normal);
  });

  auto* completion = app.add_subcommand("completion", "Print a shell completion script: eval \"$(gym completion bash)\"");
  auto shell = std::make_shared<std::string>("bash");
  completion->add_option("shell", *shell, "bash")->check(CLI::IsMember({"bash"}));
  completion->callback([&app, shell] { std::cout << bash_completion(app); });
}

std::string did_you_mean(CLI::App& app, const std::string& word) {
  std::string best;
  size_t best_d = 3;   // at most two edits, or a unique prefix
  std::vector<std::string> prefixed;
  for (const auto& n : command_names(app)) {
    const size_t d = edit_distance(word, n);
    if (d < best_d) best_d = d, best = n;
    if (word.size() >= 2 && n.rfind(word, 0) == 0) prefixed.push_back(n);
  }
  if (best.empty() && prefixed.size() == 1) best = prefixed.front();
  return best.empty() ? "" : "; did you mean '" + best + "'?";
}

int check_command_word(CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return 0;
  const std::string word = argv[1];
  for (const auto& n : command_names(app))
    if (n == word) return 0;
  std::string all;
  for (const auto& n : command_names(app)) all += (all.empty() ? "" : ", ") + n;
  std::cerr << "gym: error: unknown command '" << word << "'" << did_you_mean(app, word) << " (commands: " << all << "; gym help)\n";
  return 2;
}

}  // namespace gym::cli
