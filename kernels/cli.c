/* cli.c - see cli.h. */
#include "kernels/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

double bt_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
