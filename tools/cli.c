/* cli.c - see cli.h. */
#include "tools/cli.h"

#include "kernels/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *g_prog = "bt";
static const char *g_synopsis = "[options]";

void bt_cli_init(const char *prog, const char *synopsis) {
  g_prog = prog;
  g_synopsis = synopsis;
}

static void vmsg(const char *fmt, va_list ap) {
  fprintf(stderr, "%s: ", g_prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

void bt_msg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg(fmt, ap);
  va_end(ap);
}

void bt_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg(fmt, ap);
  va_end(ap);
  exit(1);
}

void bt_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg(fmt, ap);
  va_end(ap);
  fprintf(stderr, "usage: %s %s\nTry '%s --help' for more information.\n", g_prog, g_synopsis, g_prog);
  exit(1);
}

void bt_cli_apply_isa(void) {
  const char *env = getenv("BT_ISA");
  bt_isa want;
  if (!env || !*env)
    return;
  if (bt_isa_parse(env, &want) != 0)
    bt_usage_error("BT_ISA='%s' is not one of scalar, avx2, avx512", env);
  if (bt_isa_set(want) != 0)
    bt_die("BT_ISA=%s: this CPU lacks it", env);
}

int bt_cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
      return 1;
  return 0;
}

int bt_parse_size(const char *s, uint64_t *out) {
  if (!s || *s < '0' || *s > '9')
    return -1;
  /* The number: whole digits exactly; with a decimal part or an exponent,
   * through strtod, and then it must come out whole. */
  const char *p = s;
  uint64_t v = 0;
  int exact = 1;
  for (; *p >= '0' && *p <= '9'; p++) {
    const uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  double d = 0;
  if (*p == '.' || *p == 'e' || *p == 'E') {
    char *end;
    errno = 0;
    d = strtod(s, &end);
    if (errno || end == p || !isfinite(d))
      return -1;
    p = end;
    exact = 0;
  }
  static const struct {
    const char *suf;
    uint64_t mul;
  } u[] = {{"", 1},
           {"K", 1000ull}, {"KB", 1000ull}, {"k", 1000ull}, {"kB", 1000ull}, {"KiB", 1ull << 10},
           {"M", 1000000ull}, {"MB", 1000000ull}, {"MiB", 1ull << 20},
           {"G", 1000000000ull}, {"GB", 1000000000ull}, {"GiB", 1ull << 30},
           {"T", 1000000000000ull}, {"TB", 1000000000000ull}, {"TiB", 1ull << 40}};
  for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
    if (strcmp(p, u[i].suf) == 0) {
      if (exact) {
        if (v > UINT64_MAX / u[i].mul)
          return -1;
        *out = v * u[i].mul;
        return 0;
      }
      const double x = d * (double)u[i].mul;
      if (!(x >= 0 && x < 0x1p63) || x != floor(x))
        return -1;
      *out = (uint64_t)x;
      return 0;
    }
  return -1;
}

uint64_t bt_cli_count(const char *opt, const char *s, uint64_t lo, uint64_t hi) {
  uint64_t v;
  if (bt_parse_size(s, &v) != 0 || v < lo || v > hi)
    bt_usage_error("invalid value for %s: '%s' (a whole number in %llu..%llu)", opt, s,
                   (unsigned long long)lo, (unsigned long long)hi);
  return v;
}

int bt_parse_duration(const char *s, double *out) {
  static const struct {
    char unit;
    double sec;
  } u[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
  if (!s || !*s)
    return -1;
  double total = 0;
  size_t next = 0; /* the units go from days down to seconds, each at most once */
  for (const char *p = s; *p;) {
    if (!((*p >= '0' && *p <= '9') || *p == '.'))
      return -1;
    char *end;
    errno = 0;
    const double v = strtod(p, &end);
    if (end == p || errno || !isfinite(v) || v < 0)
      return -1;
    if (*end == '\0') { /* a bare number is seconds, and only on its own */
      if (p != s)
        return -1;
      total = v;
      break;
    }
    size_t i = next;
    while (i < sizeof u / sizeof u[0] && u[i].unit != *end)
      i++;
    if (i == sizeof u / sizeof u[0])
      return -1;
    total += v * u[i].sec;
    next = i + 1;
    p = end + 1;
  }
  if (!isfinite(total))
    return -1;
  *out = total;
  return 0;
}

int bt_parse_real(const char *s, double lo, double hi, double *out) {
  if (!s)
    return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v) || !(v >= lo && v <= hi))
    return -1;
  *out = v;
  return 0;
}

uint8_t *bt_cli_read_all(const char *path, size_t *n) {
  FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!f)
    bt_die("cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 16, len = 0;
  uint8_t *b = malloc(cap);
  for (size_t got; b && (got = fread(b + len, 1, cap - len, f)) > 0;) {
    len += got;
    if (len == cap) {
      uint8_t *nb = cap <= (SIZE_MAX >> 1) ? realloc(b, cap *= 2) : NULL;
      if (!nb)
        free(b);
      b = nb;
    }
  }
  if (!b)
    bt_die("out of memory reading %s", path);
  if (ferror(f))
    bt_die("cannot read %s: %s", path, strerror(errno));
  if (f != stdin)
    fclose(f);
  *n = len;
  return b;
}
