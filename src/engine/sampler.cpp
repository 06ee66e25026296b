// CPU sampler: API_SPEC §8.2 pipeline per row, in double precision. Top-k / top-p without min-p follow
// FlashInfer's "joint" order (both filters judged on the same distribution); with min-p the probabilities are
// renormalised after top-k and after top-p, then tokens below min_p x p_max are dropped. Ties rank the lower
// token id first everywhere (argmax, top-k, top logprobs), so results are deterministic.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "base/check.h"

namespace dsa::engine {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// The `n` indices of the largest values, largest first, lower id first on ties (O(V log n)).
std::vector<int32_t> order_desc(const std::vector<double>& v, size_t n) {
    std::vector<int32_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    n = std::min(n, idx.size());
    auto before = [&](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); };
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n), idx.end(), before);
    idx.resize(n);
    return idx;
}

int32_t argmax(const std::vector<double>& v) {
    int32_t best = 0;
    for (int32_t i = 1; i < static_cast<int32_t>(v.size()); ++i) {
        if (v[i] > v[best]) best = i;
    }
    return best;
}

std::vector<double> softmax(const std::vector<double>& logits) {
    std::vector<double> lp = log_softmax(logits);
    for (double& x : lp) x = std::exp(x);
    return lp;
}

void renormalise(std::vector<double>& p) {
    double sum = std::accumulate(p.begin(), p.end(), 0.0);
    if (sum <= 0.0) return;
    for (double& x : p) x /= sum;
}

// Keeps only the first `num_keep` tokens of `order` (which lists at least that many).
void keep_top(std::vector<double>& p, const std::vector<int32_t>& order, size_t num_keep) {
    std::vector<double> kept(p.size(), 0.0);
    for (size_t i = 0; i < num_keep && i < order.size(); ++i) kept[order[i]] = p[order[i]];
    p.swap(kept);
}

// Number of leading tokens of `order` whose preceding mass (in `p`) is at most top_p (always >= 1).
size_t top_p_count(const std::vector<double>& p, const std::vector<int32_t>& order, double top_p) {
    double before = 0.0;
    size_t n = 0;
    for (int32_t id : order) {
        if (n > 0 && before > top_p) break;  // SGLang masks (cumsum - p) > top_p
        before += p[id];
        ++n;
    }
    return n;
}

// Inverse-CDF draw over the ids in increasing order (any fixed order gives the same distribution).
int32_t draw(const std::vector<double>& p, double u) {
    double total = std::accumulate(p.begin(), p.end(), 0.0);
    double target = u * total, cum = 0.0;
    int32_t last = 0;
    for (int32_t id = 0; id < static_cast<int32_t>(p.size()); ++id) {
        if (p[id] <= 0.0) continue;
        cum += p[id];
        last = id;
        if (cum > target) return id;
    }
    return last;
}

TokenLogprob make_logprob(const std::vector<double>& logprobs, int32_t chosen, int32_t num_top) {
    TokenLogprob out;
    out.token_id = chosen;
    out.logprob = logprobs[chosen];
    if (num_top > 0) {
        for (int32_t id : order_desc(logprobs, static_cast<size_t>(num_top))) out.top.emplace_back(id, logprobs[id]);
    }
    return out;
}

int32_t first_allowed(std::span<const uint64_t> allowed, size_t vocab) {
    for (size_t t = 0; t < vocab; ++t) {
        if (t / 64 < allowed.size() && ((allowed[t / 64] >> (t % 64)) & 1u)) return static_cast<int32_t>(t);
    }
    return 0;
}

}  // namespace

double uniform_for(uint64_t seed, int64_t position) {
    uint64_t x = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(position) + 0x632BE59BD9B4E019ull));
    return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

std::vector<double> log_softmax(const std::vector<double>& logits) {
    double mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (double x : logits) sum += std::exp(x - mx);
    double lse = mx + std::log(sum);
    std::vector<double> out(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - lse;
    return out;
}

void apply_penalties(std::vector<double>& logits, const SampleInput& in) {
    const SamplingParams& sp = *in.params;
    const auto vocab = static_cast<int32_t>(logits.size());
    std::unordered_map<int32_t, int64_t> counts;
    for (int32_t t : in.output_ids) {
        if (t >= 0 && t < vocab) ++counts[t];
    }
    for (const auto& [t, n] : counts) logits[t] -= sp.frequency_penalty * static_cast<double>(n);
    if (static_cast<int64_t>(in.output_ids.size()) < sp.min_new_tokens) {
        for (int32_t t : in.stop_ids) {
            if (t >= 0 && t < vocab) logits[t] = kNegInf;
        }
    }
    for (const auto& [t, n] : counts) logits[t] -= sp.presence_penalty;
    if (sp.repetition_penalty != 1.0) {
        for (const auto& [t, n] : counts) {
            logits[t] = logits[t] > 0 ? logits[t] / sp.repetition_penalty : logits[t] * sp.repetition_penalty;
        }
    }
}

void apply_logit_bias(std::vector<double>& logits, const SamplingParams& params) {
    for (const auto& [t, bias] : params.logit_bias) {
        if (t >= 0 && t < static_cast<int32_t>(logits.size())) logits[t] += bias;
    }
}

void apply_grammar_mask(std::vector<double>& logits, std::span<const uint64_t> allowed) {
    if (allowed.empty()) return;
    for (size_t t = 0; t < logits.size(); ++t) {
        const size_t w = t / 64;
        if (w >= allowed.size() || !((allowed[w] >> (t % 64)) & 1u)) logits[t] = kNegInf;
    }
}

std::vector<double> filtered_probs(const std::vector<double>& probs, const SamplingParams& sp) {
    std::vector<double> p = probs;
    const bool filter_p = sp.top_p<1.0, filter_min_p = sp.min_p> 0.0;
    if (sp.top_k <= 0 && !filter_p && !filter_min_p) return p;
    size_t num_k = sp.top_k > 0 ? std::min<size_t>(static_cast<size_t>(sp.top_k), p.size()) : p.size();
    std::vector<int32_t> order = order_desc(p, num_k);
    if (!filter_min_p) {  // joint: both filters on the same distribution
        size_t num_p = filter_p ? top_p_count(p, order, sp.top_p) : order.size();
        keep_top(p, order, std::min(num_k, num_p));
        renormalise(p);
        return p;
    }
    keep_top(p, order, num_k);
    renormalise(p);
    if (filter_p) {
        keep_top(p, order, top_p_count(p, order, sp.top_p));
        renormalise(p);
    }
    double threshold = sp.min_p * p[order.front()];
    for (double& x : p) {
        if (x < threshold) x = 0.0;
    }
    renormalise(p);
    return p;
}

SampleResult sample_token(const SampleInput& in, LogprobMode mode) {
    DSA_CHECK(in.params != nullptr);
    DSA_CHECK(!in.logits.empty());
    const SamplingParams& sp = *in.params;
    std::vector<double> logits(in.logits.begin(), in.logits.end());
    for (double& x : logits) {
        if (std::isnan(x)) x = kNegInf;  // NaN sanitisation
    }
    apply_penalties(logits, in);
    apply_grammar_mask(logits, in.allowed);
    apply_logit_bias(logits, sp);
    SampleResult out;
    if (!in.allowed.empty() && *std::max_element(logits.begin(), logits.end()) == kNegInf) {
        out.token_id = first_allowed(in.allowed, logits.size());  // every allowed id was penalised to -inf
        if (mode == LogprobMode::kChosenAndTop) out.logprob.token_id = out.token_id;
        return out;
    }
    if (sp.is_greedy()) {
        out.token_id = argmax(logits);
        if (mode == LogprobMode::kChosenAndTop)
            out.logprob = make_logprob(log_softmax(logits), out.token_id, in.num_top_logprobs);
        return out;
    }
    for (double& x : logits) x /= sp.temperature;
    std::vector<double> probs = softmax(logits);
    std::vector<double> kept = filtered_probs(probs, sp);
    out.token_id = draw(kept, uniform_for(in.seed, in.position));
    if (mode == LogprobMode::kChosenAndTop)
        out.logprob = make_logprob(log_softmax(logits), out.token_id, in.num_top_logprobs);
    return out;
}

}  // namespace dsa::engine
