// `dsaserve mtp-probe`: MTP draft acceptance of a checkpoint. Greedy decoding of each prompt on the reference
// model, then the MTP layer at every generated position t (main hidden state at t, token t+1) predicts token
// t+2; the rate is the fraction equal to the greedy token (the training script's mtp_acceptance).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace dsa::app {

struct MtpProbePrompt {
    std::vector<int32_t> ids;
    int64_t max_new_tokens = 0;
};

struct MtpProbeResult {
    int64_t accepted = 0;
    int64_t positions = 0;
    int64_t prompts = 0;
    int64_t generated_tokens = 0;
};

// One JSONL line: {"text": "..."} or {"input_ids": [...]}, optional "max_new_tokens" (else `default_max_new`).
// `encode` tokenizes text; ids must lie in [0, vocab).
StatusOr<MtpProbePrompt> parse_mtp_probe_line(const std::string& line, int64_t default_max_new, int64_t vocab,
                                              const std::function<std::vector<int32_t>(const std::string&)>& encode);

// Registers the subcommand on `app`; the callback runs it and sets the exit code.
void add_mtp_probe_command(CLI::App& app, int* exit_code);

}  // namespace dsa::app
