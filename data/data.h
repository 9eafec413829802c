/*
 * data.h - bt's data sets: named corpora (verified by checksum, cached
 * decompressed) and plain or .xz files, loaded whole into memory.
 *
 * Named specs:
 *   wiki100m       $BT_DATA/text/wiki100m.txt.xz, 10^8 bytes once decoded
 *   wiki-valid10m  $BT_DATA/text/wiki-valid10m.txt.xz, 10^7 bytes
 *   enwik8         <cache>/enwik8, else downloaded from mattmahoney.net
 *   enwik9         <cache>/enwik9, likewise (10^9 bytes: needs 1 GB of RAM)
 * Anything else is a file path; one ending in ".xz" is decompressed (so a
 * file named "enwik8" in the cwd is loaded as "./enwik8").
 *
 * Environment:
 *   BT_DATA      the read-only data folder (default ../shared/data)
 *   BT_CACHE     the cache folder (default $XDG_CACHE_HOME/bt, $HOME/.cache/bt)
 *   BT_OFFLINE   "1": never try to download
 *   BT_ENWIK_URL base URL of enwik8.zip / enwik9.zip (default
 *                http://mattmahoney.net/dc/), for a mirror
 * Nothing is ever written under BT_DATA. Errors come back as bt_error codes
 * with a one-line bt_error_detail(); nothing is printed.
 */
#ifndef BT_DATA_H
#define BT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The data folder: $BT_DATA if set and non-empty, else "../shared/data"
 * (relative to the cwd). Points into the environment or static storage. */
const char *bt_data_dir(void);

/* The cache folder: $BT_CACHE, else $XDG_CACHE_HOME/bt, else $HOME/.cache/bt,
 * else ".cache/bt". Not created here: the loaders create it (mkdir -p) when
 * they write there. Thread-local storage, valid until the thread's next call;
 * "" if the path would not fit in PATH_MAX. */
const char *bt_cache_dir(void);

/* mkdir -p: creates dir and its missing parents (mode 0755); an error if dir
 * then is not a folder. */
bt_error bt_mkdir_p(const char *dir);

/* Loads the whole data set named by spec (see above) into a new malloc'd
 * buffer: *bytes (caller frees) and its length *n >= 1. On error *bytes is
 * NULL and *n is 0. Errors: BT_ERR_ARG (NULL spec or out pointers),
 * BT_ERR_IO (missing or unreadable file, named in the detail),
 * BT_ERR_TOO_SHORT (empty), BT_ERR_FORMAT / BT_ERR_CORRUPT (bad .xz),
 * BT_ERR_CHECKSUM (a named set that does not match its published hash),
 * BT_ERR_NETWORK (enwik8/9 absent and could not be downloaded),
 * BT_ERR_NOMEM.
 * Named sets are verified on every load. wiki* keep a verified decompressed
 * copy in bt_cache_dir(), re-verified on use and rebuilt when damaged;
 * failing to write that copy is not an error (the cache is an optimisation). */
bt_error bt_data_load(const char *spec, uint8_t **bytes, size_t *n);

/* As bt_data_load, but keeps only bytes [offset, offset + max_bytes) of the
 * data set, clipped at its end (max_bytes = SIZE_MAX: to the end). A plain
 * file is read only in that range; named sets and .xz files are loaded (and
 * verified) whole first. BT_ERR_TOO_SHORT if the slice would be empty. */
bt_error bt_data_load_range(const char *spec, size_t offset, size_t max_bytes,
                            uint8_t **bytes, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
