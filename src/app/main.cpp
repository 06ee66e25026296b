// dsaserve entry point: the CLI. Subcommands compose the modules; nothing else knows every module.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "app/generate_command.h"

int main(int argc, char** argv) {
    CLI::App app{"dsaserve: an inference server for DeepSeek Sparse Attention models (DeepSeek-V3.2, GLM-5)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "dsaserve 0.1.0");
    int exit_code = 0;
    dsa::app::add_generate_command(app, &exit_code);
    CLI::App* serve = app.add_subcommand("serve", "Run the SGLang-compatible HTTP server (not built yet)");
    serve->allow_extras();
    serve->callback([&exit_code] {
        std::fprintf(stderr, "dsaserve serve: not supported yet (the HTTP server is being built)\n");
        exit_code = 2;
    });
    CLI11_PARSE(app, argc, argv);
    return exit_code;
}
