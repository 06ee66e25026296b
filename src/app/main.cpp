// dsaserve entry point: the CLI. Subcommands compose the modules; nothing else knows every module.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "app/bench_serving.h"
#include "app/generate_command.h"
#include "app/mtp_probe.h"
#include "app/serve_command.h"
#include "app/server_args.h"

int main(int argc, char** argv) {
    CLI::App app{"dsaserve: an inference server for DeepSeek Sparse Attention models (DeepSeek-V3.2, GLM-5)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "dsaserve 0.1.0");
    int exit_code = 0;
    dsa::app::add_generate_command(app, &exit_code);
    dsa::app::add_bench_serving_command(app, &exit_code);
    dsa::app::add_mtp_probe_command(app, &exit_code);

    dsa::app::ServerArgs server_args;
    CLI::App* serve = app.add_subcommand("serve", "Run the SGLang-compatible HTTP server");
    dsa::app::register_server_args(*serve, server_args);
    serve->callback([&] {
        dsa::Status st = dsa::app::run_serve(server_args);
        if (!st.is_ok()) {
            std::fprintf(stderr, "dsaserve serve: %s\n", st.message().c_str());
            exit_code = 2;
        }
    });
    CLI11_PARSE(app, argc, argv);
    return exit_code;
}
