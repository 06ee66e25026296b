// StopStringMatcher: holdback while a stop string may be starting, trimming at the first match, and
// independence from how the text is split into deltas.
#include "api/stop_matcher.h"

#include <random>

#include <gtest/gtest.h>

namespace dsa::api {
namespace {

// Feeds `parts` and returns everything emitted (flushing when no match).
std::string run(StopStringMatcher& m, const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) out += m.feed(p);
    if (!m.matched()) out += m.flush();
    return out;
}

TEST(StopMatcher, NoStopsPassesThrough) {
    StopStringMatcher m({}, false);
    EXPECT_EQ(m.feed("hello"), "hello");
    EXPECT_FALSE(m.matched());
}

TEST(StopMatcher, SingleDeltaMatchTrims) {
    StopStringMatcher m({"STOP"}, false);
    EXPECT_EQ(m.feed("abcSTOPdef"), "abc");
    EXPECT_TRUE(m.matched());
    EXPECT_EQ(m.matched_stop(), "STOP");
    EXPECT_EQ(m.feed("more"), "");
}

TEST(StopMatcher, NoStopTrimKeepsStopAndCutsAfter) {
    StopStringMatcher m({"STOP"}, true);
    EXPECT_EQ(m.feed("abcSTOPdef"), "abcSTOP");
}

TEST(StopMatcher, SplitOverSeveralDeltasIsHeldBack) {
    StopStringMatcher m({"</end>"}, false);
    EXPECT_EQ(m.feed("text <"), "text ");
    EXPECT_EQ(m.num_held_bytes(), 1u);
    EXPECT_EQ(m.feed("/e"), "");
    EXPECT_EQ(m.feed("n"), "");
    EXPECT_EQ(m.feed("d>tail"), "");
    EXPECT_TRUE(m.matched());
}

TEST(StopMatcher, HeldTextReleasedWhenProvenHarmless) {
    StopStringMatcher m({"</end>"}, false);
    EXPECT_EQ(m.feed("a</e"), "a");
    EXPECT_EQ(m.feed("x"), "</ex");
    EXPECT_FALSE(m.matched());
}

TEST(StopMatcher, HeldTextReleasedAtFlush) {
    StopStringMatcher m({"STOP"}, false);
    EXPECT_EQ(m.feed("abcST"), "abc");
    EXPECT_EQ(m.flush(), "ST");
}

TEST(StopMatcher, OverlappingPrefixes) {
    // A partial match that restarts inside itself: the held suffix must be the longest partial match.
    StopStringMatcher m({"aab"}, false);
    EXPECT_EQ(m.feed("xaa"), "x");
    EXPECT_EQ(m.feed("a"), "a");  // "aaa": "aa" still a possible start
    EXPECT_EQ(m.feed("b!"), "");
    EXPECT_TRUE(m.matched());
    StopStringMatcher m2({"abab"}, false);
    EXPECT_EQ(run(m2, {"ab", "aba", "b"}), "");  // "ababab": first "abab" starts at 0
    EXPECT_TRUE(m2.matched());
}

TEST(StopMatcher, MultipleStopsEarliestStartWins) {
    StopStringMatcher m({"world", "lo w"}, false);
    EXPECT_EQ(m.feed("hello world"), "hel");
    EXPECT_EQ(m.matched_stop(), "lo w");
}

TEST(StopMatcher, MultipleStopsSameStartFirstListedWins) {
    StopStringMatcher m({"ab", "abc"}, false);
    EXPECT_EQ(m.feed("xabc"), "x");
    EXPECT_EQ(m.matched_stop(), "ab");
}

TEST(StopMatcher, HoldsLongestPartialAcrossStops) {
    StopStringMatcher m({"xyz", "yzzz"}, false);
    EXPECT_EQ(m.feed("ayz"), "a");  // "yz" may start "yzzz"
    EXPECT_EQ(m.feed("zz"), "");
    EXPECT_EQ(m.matched_stop(), "yzzz");
}

TEST(StopMatcher, EmptyStopStringsIgnored) {
    StopStringMatcher m({"", "END"}, false);
    EXPECT_TRUE(m.active());
    EXPECT_EQ(m.feed("abc"), "abc");
    StopStringMatcher none({""}, false);
    EXPECT_FALSE(none.active());
}

TEST(StopMatcher, UnicodeStopSplitInsideCharacters) {
    std::string stop = "世界";  // 6 bytes
    StopStringMatcher m({stop}, false);
    std::string text = "你好世界!";
    std::string out;
    for (char c : text) out += m.feed(std::string(1, c));  // byte by byte
    EXPECT_TRUE(m.matched());
    EXPECT_EQ(out, "你好");
}

TEST(StopMatcher, UnicodeNonMatchNeverSplitsCharacters) {
    StopStringMatcher m({"世界"}, false);
    EXPECT_EQ(m.feed("你好世"), "你好");
    EXPECT_EQ(m.feed("纪"), "世纪");
}

TEST(StopMatcher, EmojiStop) {
    StopStringMatcher m({"🙂"}, false);
    EXPECT_EQ(run(m, {"ok \xF0\x9F", "\x99\x82 rest"}), "ok ");
}

// Property: for random texts and random splits, the emitted text equals the one-shot result.
TEST(StopMatcher, SplitIndependence) {
    std::mt19937 rng(7);
    const std::vector<std::string> stops = {"aba", "bb", "cab"};
    for (int iter = 0; iter < 500; ++iter) {
        std::string text;
        int len = rng() % 20;
        for (int i = 0; i < len; ++i) text += "abc"[rng() % 3];
        StopStringMatcher whole(stops, false);
        std::string expect = run(whole, {text});
        std::vector<std::string> parts;
        for (size_t i = 0; i < text.size();) {
            size_t n = 1 + rng() % 4;
            parts.push_back(text.substr(i, n));
            i += n;
        }
        StopStringMatcher split(stops, false);
        ASSERT_EQ(run(split, parts), expect) << text;
        ASSERT_EQ(split.matched(), whole.matched()) << text;
        ASSERT_EQ(split.matched_stop(), whole.matched_stop()) << text;
        // Nothing emitted ever contains a stop string.
        for (const auto& s : stops) ASSERT_EQ(expect.find(s), std::string::npos) << text;
    }
}

}  // namespace
}  // namespace dsa::api
