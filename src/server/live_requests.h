// LiveRequests: the engine request ids currently served by this front end, for POST /abort_request
// (one request by rid, its n > 1 siblings "<rid>-<i>", or all). Thread-safe; short critical sections.
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace dsa::server {

class LiveRequests {
public:
    void add(const std::string& rid) {
        std::lock_guard<std::mutex> lock(mu_);
        rids_.insert(rid);
    }
    void remove(const std::string& rid) {
        std::lock_guard<std::mutex> lock(mu_);
        rids_.erase(rid);
    }
    // `rid` itself and "<rid>-<i>" choices; every live rid when `all`.
    std::vector<std::string> match(const std::string& rid, bool all) const {
        std::lock_guard<std::mutex> lock(mu_);
        std::vector<std::string> out;
        for (const auto& r : rids_)
            if (all || r == rid || r.rfind(rid + "-", 0) == 0) out.push_back(r);
        return out;
    }
    size_t size() const {
        std::lock_guard<std::mutex> lock(mu_);
        return rids_.size();
    }

private:
    mutable std::mutex mu_;
    std::set<std::string> rids_;
};

}  // namespace dsa::server
