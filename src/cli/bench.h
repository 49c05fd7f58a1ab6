// `gym bench <name>`: each benchmark lives in its own bench_<name>.cpp, declares its add_ function
// here, and cmd_bench.cpp calls every one of them.
#pragma once
#include <CLI/CLI.hpp>

namespace gym::cli {

void add_bench_threads(CLI::App& bench);   // bench_threads.cpp
void add_bench_model(CLI::App& bench);
void add_bench_tokenizer(CLI::App& bench); // bench_tokenizer.cpp
void add_bench_nf4(CLI::App& bench);       // bench_nf4.cpp
void add_bench_dist(CLI::App& bench);      // bench_dist.cpp     // bench_model.cpp: generate, sft, gspo

}  // namespace gym::cli
