// Who owns output_dir, and what gym may remove there. gym never destroys what it did not write:
//   - a manifest (.gym_manifest.json) lists the entries gym's runs created there; overwrite
//     removes exactly those, leaves foreign files alone, and refuses while a foreign file has a
//     name gym writes (a model, an adapter, a checkpoint-N, ...);
//   - output_dir may not be (or lie inside) a folder the run reads: the model, the adapter,
//     the dataset folder;
//   - a lock file (.gym.lock, holder's pid and host) keeps two runs out of one output_dir;
//     a lock whose holder died is taken over (flock: released by the kernel on exit).
#pragma once
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace gym::checkpoint {

namespace fs = std::filesystem;

inline constexpr const char* kManifestName = ".gym_manifest.json";
inline constexpr const char* kLockName = ".gym.lock";

// Config error when `output_dir` equals or lies inside one of `inputs` (name → path; paths that
// do not exist are skipped). Nothing is touched.
void check_not_inside_inputs(const fs::path& output_dir, const std::vector<std::pair<std::string, fs::path>>& inputs);

// Creates output_dir if needed and takes its lock for the life of this process. A live holder
// is a config error naming its pid and host.
void lock_output_dir(const fs::path& output_dir);

// The entries (top-level names) gym's runs wrote in output_dir.
std::set<std::string> manifest_entries(const fs::path& output_dir);
// Adds names to the manifest (written atomically). Called before or right after gym creates them.
void record_outputs(const fs::path& output_dir, const std::set<std::string>& names);
// Runs write(), then records every top-level entry that did not exist before it.
template <typename Write>
void write_recorded(const fs::path& output_dir, Write&& write);

// Entries of output_dir that gym did not write (its own lock, manifest and temporary files aside).
std::vector<std::string> foreign_entries(const fs::path& output_dir);

// A config error (prefixed with `why`) when output_dir holds a foreign entry under a name gym
// writes: the run would overwrite it.
void check_no_foreign_outputs(const fs::path& output_dir, const char* why);

// A config error when one of `inputs` (name → path) lies inside an entry of output_dir that gym
// wrote earlier: clearing the earlier outputs would delete what the run is about to read.
void check_inputs_survive(const fs::path& output_dir, const std::vector<std::pair<std::string, fs::path>>& inputs);

// overwrite_output_dir: removes every manifest entry; a config error (nothing removed) when a
// foreign entry has a name gym writes. Returns the names removed.
std::vector<std::string> clear_previous_outputs(const fs::path& output_dir);

// True when output_dir holds the final outputs of a run that reached its last step.
bool holds_finished_run(const fs::path& output_dir);

// Removes gym's temporaries at the top of output_dir ("<a name gym writes>.tmp[.old|.rm].<pid>"):
// files and folders of writes that were interrupted (kill -9, a full disk). Call it holding the lock: no other writer is running.
void remove_temporaries(const fs::path& output_dir);

// Top-level names in a folder (empty when it does not exist).
std::set<std::string> entry_names(const fs::path& dir);

template <typename Write>
void write_recorded(const fs::path& output_dir, Write&& write) {
  const auto before = entry_names(output_dir);
  write();
  std::set<std::string> added;
  for (const auto& n : entry_names(output_dir))
    if (!before.count(n)) added.insert(n);
  if (!added.empty()) record_outputs(output_dir, added);
}

}  // namespace gym::checkpoint
