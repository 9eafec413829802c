/*
 * error.h - the library's error codes (a small pinned enum, as zstd's).
 * Library code never prints or exits: it returns one of these and may leave a
 * one-line detail (a file name, an offset) for the CLI to print.
 */
#ifndef BT_ERROR_H
#define BT_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Values are pinned: they may be stored and compared across versions. */
typedef enum {
  BT_OK = 0,
  BT_ERR_ARG = 1,        /* invalid argument or configuration */
  BT_ERR_NOMEM = 2,      /* allocation failed */
  BT_ERR_IO = 3,         /* open, read, write, rename or fsync failed */
  BT_ERR_FORMAT = 4,     /* not a bt file, or an unsupported version */
  BT_ERR_CORRUPT = 5,    /* damaged or truncated file */
  BT_ERR_CHECKSUM = 6,   /* content does not match its checksum */
  BT_ERR_MISMATCH = 7,   /* a file made with another model or config */
  BT_ERR_NUMERIC = 8,    /* NaN or Inf appeared */
  BT_ERR_TOO_SHORT = 9,  /* input too short for the requested use */
  BT_ERR_NETWORK = 10,   /* a download failed */
  BT_ERR_INTERRUPTED = 11, /* stopped by a signal */
  BT_ERR_LIMIT = 12,     /* beyond a resource limit the caller set (e.g. --max-size) */
  BT_ERR_NOT_FOUND = 13, /* no such model on the search path */
  BT_ERR__COUNT
} bt_error;

/* Static text for a code, e.g. "corrupt or truncated input". Never NULL. */
const char *bt_error_name(bt_error e);

/* Records a detail for the calling thread (printf-style) and returns e, so
 * library code can write: return bt_fail(BT_ERR_IO, "cannot open %s", path);
 * The old detail may be an argument, to wrap it:
 *   return bt_fail(e, "%s: %s", path, bt_error_detail()); */
bt_error bt_fail(bt_error e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The calling thread's last detail, or "" (owned by the library). */
const char *bt_error_detail(void);

#ifdef __cplusplus
}
#endif
#endif
