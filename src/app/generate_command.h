// `dsaserve generate`: greedy generation for one prompt of token ids on the reference model, printing the new
// ids and the time of each step. The first user of the model; also a quick check of a checkpoint.
#pragma once

#include <CLI/CLI.hpp>

namespace dsa::app {

// Registers the subcommand on `app`; the callback runs it and sets the exit code.
void add_generate_command(CLI::App& app, int* exit_code);

}  // namespace dsa::app
