// DecodeGraphs: the decode steps of a device model (every sequence computes one token) through
// model::DsaModel::forward_decode, with the step's inputs (tokens, positions, page tables) written into fixed
// device buffers, and, for batches up to --cuda-graph-max-bs, replayed from CUDA graphs: one graph per
// (padded batch size, key-slot width) bucket, captured on the bucket's first step (which runs eagerly) and
// replayed afterwards; capture_all() captures every batch size at the smallest width up front. Padding rows
// decode token 0 at position 0 into the reserved page 0.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "model/forward_batch.h"
#include "model/transformer.h"
#include "tensor/tensor.h"

namespace dsa::engine {

struct DecodeGraphOptions {
    bool enabled = true;                  // --disable-cuda-graph turns capture off (the device inputs stay)
    int64_t max_bs = 256;                 // --cuda-graph-max-bs
    std::vector<int64_t> batch_sizes;     // --cuda-graph-bs; empty: default_graph_batch_sizes(max_bs)
};

// The default capture list (the shape of SGLang's): 1, 2, 4, 8, 12, 16, 24, 32, ... in steps of 8 up to max_bs, and
// max_bs itself.
std::vector<int64_t> default_graph_batch_sizes(int64_t max_bs);
// The key-slot width a decode step with sequences up to `max_len` tokens runs with: the next power of two
// (at least 1024), capped at `max_context` rounded up to a page.
int64_t decode_width(int64_t max_len, int64_t max_context, int64_t page_size);

class DecodeGraphs {
  public:
    // `model` and `kv` must outlive this object. max_context bounds every sequence's length.
    DecodeGraphs(model::DsaModel& model, model::KvStores& kv, int64_t page_size, int64_t max_context,
                 DecodeGraphOptions options);
    ~DecodeGraphs();

    // Whether `steps` is a decode step (one new token per sequence, last-token logits only).
    static bool is_decode(std::span<const model::SequenceStep> steps);
    // One decode step: logits [steps.size(), V] f32 on the model's device, valid until the next call.
    Tensor run(std::span<const model::SequenceStep> steps);
    // Captures every batch size at the smallest width now (as SGLang does at startup) with padding-only steps
    // (they write only the reserved page 0); wider buckets are still captured on first use.
    void capture_all();

    // For tests and logs.
    int64_t graphs_captured() const { return captured_; }
    int64_t graph_replays() const { return replays_; }
    int64_t capture_failures() const { return failures_; }
    const std::vector<int64_t>& batch_sizes() const { return sizes_; }

  private:
    struct Graph {
        std::unique_ptr<backend::BackendGraph> graph;  // null after a failed capture (the bucket runs eagerly)
        Tensor logits;                                 // the graph's output buffer [bs, V]
    };
    // The padded batch size for `n` sequences, or 0 when n exceeds every captured size.
    int64_t bucket(int64_t n) const;
    // The step staged in `in` for bucket (bs, width): the bucket's graph replayed, or on its first step an eager
    // run followed by the capture. Logits [bs, V].
    Tensor execute(int64_t bs, int64_t width, const model::DecodeInputs& in);
    // Fixed device buffers for bs rows of the given width, filled from `steps` (rows past steps.size(): padding).
    model::DecodeInputs stage(std::span<const model::SequenceStep> steps, int64_t bs, int64_t width);
    model::DecodeInputs upload(std::span<const model::SequenceStep> steps, int64_t width);  // no-graph path
    void fill_host(std::span<const model::SequenceStep> steps, int64_t bs, int64_t pages);

    model::DsaModel& model_;
    model::KvStores& kv_;
    backend::Backend& be_;
    int64_t page_size_, max_context_, max_pages_;
    DecodeGraphOptions options_;
    std::vector<int64_t> sizes_;
    // Device buffers sized for the largest bucket; buckets use their leading parts.
    Tensor tokens_, positions_, query_request_, page_table_;
    // Host staging of one step.
    std::vector<int32_t> host_tokens_, host_positions_, host_pages_;
    std::map<std::pair<int64_t, int64_t>, Graph> graphs_;  // (bs, width) -> graph
    int64_t captured_ = 0, replays_ = 0, failures_ = 0;
};

}  // namespace dsa::engine
