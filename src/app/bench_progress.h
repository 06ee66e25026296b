// bench-serving's progress display on stderr: a redrawn bar on a terminal, or plain periodic lines (every
// tenth of the run) when stderr is a file or pipe, so logs stay readable. Thread-safe: request threads tick it.
#pragma once

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

namespace dsa::app {

// "[########            ]  12/32  37% 1.4s" for a bar `width` characters wide.
std::string progress_bar_line(int done, int total, double elapsed_s, int width);

class Progress {
  public:
    // enabled=false prints nothing (--disable-tqdm). tty: redraw in place; otherwise plain lines.
    Progress(int total, bool enabled, bool tty, std::FILE* out = stderr);
    void tick();    // one request finished
    void finish();  // ends the display (newline after a bar)

  private:
    void print_locked();
    int total_, done_ = 0, last_printed_tenth_ = 0;
    bool enabled_, tty_;
    std::FILE* out_;
    std::chrono::steady_clock::time_point start_;
    std::mutex mu_;
};

}  // namespace dsa::app
