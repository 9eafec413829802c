/* error.c - error names and the per-thread detail line. */
#include "kernels/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_detail[512];

const char *bt_error_name(bt_error e) {
  static const char *const names[BT_ERR__COUNT] = {
      [BT_OK] = "no error",
      [BT_ERR_ARG] = "invalid argument",
      [BT_ERR_NOMEM] = "out of memory",
      [BT_ERR_IO] = "I/O error",
      [BT_ERR_FORMAT] = "unknown or unsupported format",
      [BT_ERR_CORRUPT] = "corrupt or truncated input",
      [BT_ERR_CHECKSUM] = "checksum mismatch",
      [BT_ERR_MISMATCH] = "model or configuration mismatch",
      [BT_ERR_NUMERIC] = "non-finite value (NaN or Inf)",
      [BT_ERR_TOO_SHORT] = "input too short",
      [BT_ERR_NETWORK] = "download failed",
      [BT_ERR_INTERRUPTED] = "interrupted",
      [BT_ERR_LIMIT] = "beyond the size limit",
      [BT_ERR_NOT_FOUND] = "not found",
  };
  if ((int)e < 0 || e >= BT_ERR__COUNT || !names[e])
    return "unknown error";
  return names[e];
}

/* Formats into a local buffer first, so the arguments may include
 * bt_error_detail() itself: bt_fail(e, "reading %s: %s", name, bt_error_detail()). */
bt_error bt_fail(bt_error e, const char *fmt, ...) {
  char line[sizeof g_detail];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  memcpy(g_detail, line, sizeof line);
  return e;
}

const char *bt_error_detail(void) { return g_detail; }
