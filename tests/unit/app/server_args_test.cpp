// The serve flags parse with SGLang's spellings and defaults; unbuilt features fail with "not supported yet".
#include "app/server_args.h"

#include <vector>

#include <gtest/gtest.h>

namespace dsa::app {
namespace {

struct Parsed {
    ServerArgs args;
    std::string error;  // CLI11 parse error, if any
};

Parsed parse(std::vector<std::string> argv) {
    Parsed p;
    CLI::App cmd("serve");
    register_server_args(cmd, p.args);
    std::vector<const char*> raw = {"serve"};
    for (auto& s : argv) raw.push_back(s.c_str());
    try {
        cmd.parse(static_cast<int>(raw.size()), raw.data());
    } catch (const CLI::ParseError& e) {
        p.error = e.what();
    }
    return p;
}

TEST(ServerArgs, SglangDeploymentCommandParses) {
    Parsed p = parse({"--model-path", "/models/DeepSeek-V3.2", "--tp", "1", "--tool-call-parser", "deepseekv32",
                      "--reasoning-parser", "deepseek-v3", "--mem-fraction-static", "0.85", "--chunked-prefill-size",
                      "8192", "--max-running-requests", "64", "--kv-cache-dtype", "fp8_e4m3", "--enable-metrics",
                      "--api-key", "k", "--port", "31000", "--nsa-prefill-backend", "flashmla_sparse",
                      "--schedule-conservativeness", "0.3"});
    ASSERT_EQ(p.error, "");
    EXPECT_EQ(p.args.model_path, "/models/DeepSeek-V3.2");
    EXPECT_EQ(p.args.tool_call_parser, "deepseekv32");
    EXPECT_DOUBLE_EQ(*p.args.mem_fraction_static, 0.85);
    EXPECT_EQ(*p.args.chunked_prefill_size, 8192);
    EXPECT_EQ(p.args.kv_cache_dtype, "fp8_e4m3");
    EXPECT_TRUE(p.args.enable_metrics);
    EXPECT_EQ(p.args.port, 31000);
    EXPECT_DOUBLE_EQ(p.args.schedule_conservativeness, 0.3);
    EXPECT_TRUE(validate_server_args(p.args).is_ok());
    EXPECT_TRUE(check_supported(p.args).is_ok()) << check_supported(p.args).message();
}

TEST(ServerArgs, Defaults) {
    Parsed p = parse({});
    ASSERT_EQ(p.error, "");
    EXPECT_EQ(p.args.host, "127.0.0.1");
    EXPECT_EQ(p.args.port, 30000);
    EXPECT_EQ(p.args.page_size, 64);
    EXPECT_EQ(p.args.max_prefill_tokens, 16384);
    EXPECT_FALSE(p.args.mem_fraction_static.has_value());
}

TEST(ServerArgs, AliasesAndBadValues) {
    EXPECT_EQ(parse({"--model", "m"}).args.model_path, "m");
    EXPECT_NE(parse({"--kv-cache-dtype", "int4"}).error, "");
    EXPECT_NE(parse({"--port", "70000"}).error, "");
    EXPECT_NE(parse({"--mem-fraction-static", "1.5"}).error, "");
    Parsed p = parse({"--page-size", "32"});
    ASSERT_EQ(p.error, "");
    EXPECT_NE(validate_server_args(p.args).message().find("--page-size"), std::string::npos);
}

TEST(ServerArgs, TokenizerWorkersAreFrontEndThreads) {
    Parsed p = parse({"--tokenizer-worker-num", "8"});
    ASSERT_EQ(p.error, "");
    EXPECT_EQ(p.args.tokenizer_worker_num, 8);
    EXPECT_TRUE(validate_server_args(p.args).is_ok());
    EXPECT_TRUE(check_supported(p.args).is_ok()) << check_supported(p.args).message();
    Parsed zero = parse({"--tokenizer-worker-num", "0"});
    ASSERT_EQ(zero.error, "");
    EXPECT_NE(validate_server_args(zero.args).message().find("--tokenizer-worker-num"), std::string::npos);
}

TEST(ServerArgs, UnbuiltFeaturesAreRefusedByName) {
    struct Case {
        std::vector<std::string> argv;
        const char* flag;
    };
    const Case cases[] = {
        {{"--tp", "8"}, "--tp-size"},
        {{"--dp", "8", "--enable-dp-attention"}, "--dp-size"},
        {{"--enable-dp-attention"}, "--enable-dp-attention"},
        {{"--speculative-algorithm", "EAGLE", "--speculative-num-steps", "3"}, "--speculative-algorithm"},
        {{"--disaggregation-mode", "prefill"}, "--disaggregation-mode"},
        {{"--nnodes", "2", "--node-rank", "1"}, "--nnodes"},
    };
    for (const Case& c : cases) {
        Parsed p = parse(c.argv);
        ASSERT_EQ(p.error, "") << c.flag;
        ASSERT_TRUE(validate_server_args(p.args).is_ok()) << c.flag;
        Status st = check_supported(p.args);
        EXPECT_EQ(st.code(), StatusCode::kUnimplemented) << c.flag;
        EXPECT_NE(st.message().find("not supported yet: " + std::string(c.flag)), std::string::npos) << st.message();
    }
}

}  // namespace
}  // namespace dsa::app
