// The environment-variable registry: declared defaults and the parsing of each kind.
#include <gtest/gtest.h>

#include <cstdlib>

#include "base/env.h"

namespace dsa {
namespace {

bool declared(const char* name) {
    for (const EnvVarInfo& v : registered_env_vars()) {
        if (v.name == name) return true;
    }
    return false;
}

TEST(EnvTest, CountParsesAndDeclares) {
    ::unsetenv("DSA_TEST_ENV_COUNT");
    EXPECT_EQ(env_count("DSA_TEST_ENV_COUNT", 7, "test"), 7);
    EXPECT_TRUE(declared("DSA_TEST_ENV_COUNT"));
    ::setenv("DSA_TEST_ENV_COUNT", "", 1);
    EXPECT_EQ(env_count("DSA_TEST_ENV_COUNT", 7, "test"), 7);
    ::setenv("DSA_TEST_ENV_COUNT", "0", 1);
    EXPECT_EQ(env_count("DSA_TEST_ENV_COUNT", 7, "test"), 0);
    ::setenv("DSA_TEST_ENV_COUNT", "64", 1);
    EXPECT_EQ(env_count("DSA_TEST_ENV_COUNT", 7, "test"), 64);
    ::unsetenv("DSA_TEST_ENV_COUNT");
}

TEST(EnvDeathTest, CountRejectsNonCounts) {
    for (const char* bad : {"-1", "4x", "many", "2.5"}) {
        ::setenv("DSA_TEST_ENV_BAD_COUNT", bad, 1);
        EXPECT_DEATH(env_count("DSA_TEST_ENV_BAD_COUNT", 1, "test"), "DSA_TEST_ENV_BAD_COUNT") << bad;
    }
    ::unsetenv("DSA_TEST_ENV_BAD_COUNT");
}

TEST(EnvTest, IntAndBoolKeepTheirDefaultsOnGarbage) {
    ::setenv("DSA_TEST_ENV_INT", "12", 1);
    EXPECT_EQ(env_int("DSA_TEST_ENV_INT", 3, "test"), 12);
    ::setenv("DSA_TEST_ENV_INT", "12a", 1);
    EXPECT_EQ(env_int("DSA_TEST_ENV_INT", 3, "test"), 3);
    ::setenv("DSA_TEST_ENV_BOOL", "yes", 1);
    EXPECT_TRUE(env_bool("DSA_TEST_ENV_BOOL", false, "test"));
    ::setenv("DSA_TEST_ENV_BOOL", "0", 1);
    EXPECT_FALSE(env_bool("DSA_TEST_ENV_BOOL", true, "test"));
    ::unsetenv("DSA_TEST_ENV_INT");
    ::unsetenv("DSA_TEST_ENV_BOOL");
}

}  // namespace
}  // namespace dsa
