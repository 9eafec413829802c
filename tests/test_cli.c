/*
 * test_cli.c - the one number syntax of every bt program (tools/cli.h):
 * counts and sizes with suffixes, decimals and exponents that come out
 * whole, durations, and everything else refused.
 */
#include "tests/check.h"

#include "tools/cli.h"

int main(void) {
  static const struct {
    const char *s;
    uint64_t v;
  } good[] = {
      {"0", 0}, {"12", 12}, {"10k", 10000}, {"10K", 10000}, {"2M", 2000000}, {"1.5M", 1500000},
      {"1e6", 1000000}, {"2.5e3", 2500}, {"24002560", 24002560}, {"1KiB", 1024}, {"3MiB", 3 << 20},
      {"1GB", 1000000000}, {"2T", 2000000000000ull}, {"0.5k", 500},
      {"18446744073709551615", UINT64_MAX},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint64_t v = 7;
    CHECK(bt_parse_size(good[i].s, &v) == 0 && v == good[i].v, "'%s' -> %llu", good[i].s,
          (unsigned long long)v);
  }
  static const char *bad[] = {"", "x", "-1", "+1", "1.5", "1e-3", "1.2345k", "1e400", "1 M", "1MM",
                              "1m", "k", ".5k", "18446744073709551616", "1e30", "20000000T", "nan",
                              "inf", "1,000"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t v = 7;
    CHECK(bt_parse_size(bad[i], &v) == -1 && v == 7, "'%s' is refused", bad[i]);
  }
  CHECK(bt_parse_size(NULL, &(uint64_t){0}) == -1, "NULL is refused");
  static const struct {
    const char *s;
    double v;
  } dur[] = {{"90", 90}, {"90s", 90}, {"20m", 1200}, {"2h", 7200}, {"1.5h", 5400}, {"1d", 86400},
             {"0.5s", 0.5}, {"2h20m", 8400}, {"1d12h", 129600}, {"1m30s", 90},
             {"1h0.5m", 3630}};
  for (size_t i = 0; i < sizeof dur / sizeof dur[0]; i++) {
    double v = -1;
    CHECK(bt_parse_duration(dur[i].s, &v) == 0 && v == dur[i].v, "duration '%s' -> %g", dur[i].s, v);
  }
  static const char *bad_dur[] = {"", "h", "-5s", "5x", "5hh", "1e999", "nan", "30m2h",
                                   "2h2h", "2h30", "2h-5m", "2h 30m", "1e305d"};
  for (size_t i = 0; i < sizeof bad_dur / sizeof bad_dur[0]; i++) {
    double v = -1;
    CHECK(bt_parse_duration(bad_dur[i], &v) == -1, "duration '%s' is refused", bad_dur[i]);
  }
  return check_summary("test_cli");
}
