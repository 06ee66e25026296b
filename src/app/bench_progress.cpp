// bench-serving's progress display (see bench_progress.h).
#include "app/bench_progress.h"

#include <algorithm>

namespace dsa::app {

std::string progress_bar_line(int done, int total, double elapsed_s, int width) {
    int t = std::max(total, 1);
    int d = std::clamp(done, 0, t);
    int filled = static_cast<int>(static_cast<long long>(d) * width / t);
    char tail[96];
    std::snprintf(tail, sizeof(tail), "] %*d/%d %3d%% %.1fs", static_cast<int>(std::to_string(total).size()), d, total,
                  d * 100 / t, elapsed_s);
    return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), ' ') +
           tail;
}

Progress::Progress(int total, bool enabled, bool tty, std::FILE* out)
    : total_(total), enabled_(enabled), tty_(tty), out_(out), start_(std::chrono::steady_clock::now()) {
    std::lock_guard<std::mutex> lk(mu_);
    if (enabled_ && tty_) print_locked();
}

void Progress::tick() {
    std::lock_guard<std::mutex> lk(mu_);
    ++done_;
    if (!enabled_) return;
    int tenth = total_ > 0 ? done_ * 10 / total_ : 10;
    if (tty_ || tenth > last_printed_tenth_) {
        last_printed_tenth_ = tenth;
        print_locked();
    }
}

void Progress::finish() {
    std::lock_guard<std::mutex> lk(mu_);
    if (enabled_ && tty_) std::fputc('\n', out_);
    std::fflush(out_);
}

void Progress::print_locked() {
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::string line = progress_bar_line(done_, total_, elapsed, 30);
    if (tty_)
        std::fprintf(out_, "\r%s", line.c_str());
    else
        std::fprintf(out_, "bench-serving: %s\n", line.c_str());
    std::fflush(out_);
}

}  // namespace dsa::app
