/*
 * data.c - loading data sets: plain and .xz files, the verified wiki corpora
 * (with a decompressed cache) and enwik8/9 (cache, else curl + unzip).
 *
 * Every input is treated as hostile: sizes are checked before use, named sets
 * must match their published size and hash, and a failed step leaves no
 * partial file behind. External programs (curl, unzip) run through
 * posix_spawnp with an argument vector, never through a shell.
 */
#include "data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lzma.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/hash.h"
#include "kernels/fileio.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

extern char **environ;

/* ======================================================================== */
/* Paths                                                                     */
/* ======================================================================== */

static const char *env_nonempty(const char *name) {
  const char *s = getenv(name);
  return s && *s ? s : NULL;
}

const char *bt_data_dir(void) {
  const char *s = env_nonempty("BT_DATA");
  return s ? s : "../shared/data";
}

const char *bt_cache_dir(void) {
  static _Thread_local char buf[PATH_MAX];
  const char *s;
  int r;
  if ((s = env_nonempty("BT_CACHE")))
    r = snprintf(buf, sizeof buf, "%s", s);
  else if ((s = env_nonempty("XDG_CACHE_HOME")))
    r = snprintf(buf, sizeof buf, "%s/bt", s);
  else if ((s = env_nonempty("HOME")))
    r = snprintf(buf, sizeof buf, "%s/.cache/bt", s);
  else
    r = snprintf(buf, sizeof buf, "%s", ".cache/bt");
  if (r < 0 || (size_t)r >= sizeof buf) buf[0] = '\0';
  return buf;
}

/* out = dir "/" name, or BT_ERR_ARG if it does not fit. */
static bt_error path_join(char out[PATH_MAX], const char *dir, const char *name) {
  int r = snprintf(out, PATH_MAX, "%s/%s", dir, name);
  if (r < 0 || r >= PATH_MAX) return bt_fail(BT_ERR_ARG, "path too long: %.200s/%s", dir, name);
  return BT_OK;
}

bt_error bt_mkdir_p(const char *dir) {
  char buf[PATH_MAX];
  size_t len = strlen(dir);
  if (len == 0 || len >= sizeof buf) return bt_fail(BT_ERR_ARG, "bad cache folder \"%.200s\"", dir);
  memcpy(buf, dir, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char c = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return bt_fail(BT_ERR_IO, "cannot create folder %s: %s", buf, strerror(errno));
    buf[i] = c;
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return bt_fail(BT_ERR_IO, "%s is not a folder", dir);
  return BT_OK;
}

/* ======================================================================== */
/* Reading files                                                             */
/* ======================================================================== */

/* Reads bytes [offset, offset + max) of the open file fd (clipped at its end)
 * into a new buffer. Regular files are read with pread; pipes and devices
 * sequentially, skipping the first offset bytes. */
static bt_error read_fd_range(int fd, const char *path, size_t offset, size_t max,
                              uint8_t **out, size_t *n) {
  struct stat st;
  if (fstat(fd, &st) != 0) return bt_fail(BT_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return bt_fail(BT_ERR_IO, "%s is a folder, not a file", path);

  if (S_ISREG(st.st_mode)) {
    if (st.st_size < 0 || (uintmax_t)st.st_size > (uintmax_t)SIZE_MAX / 2)
      return bt_fail(BT_ERR_NOMEM, "%s is too large (%jd bytes)", path, (intmax_t)st.st_size);
    size_t size = (size_t)st.st_size;
    if (size == 0) return bt_fail(BT_ERR_TOO_SHORT, "%s is empty", path);
    if (offset >= size)
      return bt_fail(BT_ERR_TOO_SHORT, "%s has %zu bytes, nothing at offset %zu", path, size, offset);
    size_t want = size - offset < max ? size - offset : max;
    if (want == 0) return bt_fail(BT_ERR_TOO_SHORT, "%s: empty range requested", path);
    uint8_t *buf = malloc(want);
    if (!buf) return bt_fail(BT_ERR_NOMEM, "cannot allocate %zu bytes for %s", want, path);
    size_t got = 0;
    while (got < want) {
      size_t chunk = want - got < ((size_t)1 << 30) ? want - got : ((size_t)1 << 30);
      ssize_t r = pread(fd, buf + got, chunk, (off_t)(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        int e = errno;
        free(buf);
        return bt_fail(BT_ERR_IO, "cannot read %s: %s", path, strerror(e));
      }
      if (r == 0) {
        free(buf);
        return bt_fail(BT_ERR_IO, "%s shrank while being read", path);
      }
      got += (size_t)r;
    }
    *out = buf;
    *n = want;
    return BT_OK;
  }

  /* A stream: size unknown, grow geometrically. */
  size_t cap = 1 << 16, len = 0, skipped = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) return bt_fail(BT_ERR_NOMEM, "cannot allocate %zu bytes for %s", cap, path);
  for (;;) {
    if (len == max) break;
    if (len == cap) {
      if (cap > SIZE_MAX / 2) { free(buf); return bt_fail(BT_ERR_NOMEM, "%s is too large", path); }
      uint8_t *nb = realloc(buf, cap * 2);
      if (!nb) { free(buf); return bt_fail(BT_ERR_NOMEM, "cannot allocate %zu bytes for %s", cap * 2, path); }
      buf = nb;
      cap *= 2;
    }
    size_t room = cap - len < max - len ? cap - len : max - len;
    if (skipped < offset && room > offset - skipped) room = offset - skipped;
    ssize_t r = read(fd, buf + len, room);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      return bt_fail(BT_ERR_IO, "cannot read %s: %s", path, strerror(e));
    }
    if (r == 0) break;
    if (skipped < offset) skipped += (size_t)r; /* discard: len stays */
    else len += (size_t)r;
  }
  if (len == 0) {
    free(buf);
    return skipped == 0 ? bt_fail(BT_ERR_TOO_SHORT, "%s is empty", path)
                        : bt_fail(BT_ERR_TOO_SHORT, "%s has %zu bytes, nothing at offset %zu", path, skipped, offset);
  }
  uint8_t *nb = realloc(buf, len);
  *out = nb ? nb : buf;
  *n = len;
  return BT_OK;
}

static bt_error open_read(const char *path, int *fd) {
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return bt_fail(BT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  return BT_OK;
}

static bt_error read_file_range(const char *path, size_t offset, size_t max, uint8_t **out, size_t *n) {
  int fd;
  bt_error e = open_read(path, &fd);
  if (e) return e;
  e = read_fd_range(fd, path, offset, max, out, n);
  close(fd);
  return e;
}

/* ======================================================================== */
/* .xz decoding (liblzma, streamed from the file into one growing buffer)    */
/* ======================================================================== */

#define XZ_MEMLIMIT ((uint64_t)1 << 30) /* xz -9e needs 65 MiB; refuse absurd dictionaries */

/* Decodes the .xz stream(s) in fd into a new buffer. cap0: the first buffer
 * size (a hint); more than limit output bytes fail with over_err. */
static bt_error xz_decode_fd(int fd, const char *path, size_t cap0, size_t limit, bt_error over_err,
                             uint8_t **out, size_t *n) {
  enum { INBUF = 1 << 18 };
  lzma_stream strm = LZMA_STREAM_INIT;
  lzma_ret lr = lzma_stream_decoder(&strm, XZ_MEMLIMIT, LZMA_CONCATENATED);
  if (lr != LZMA_OK)
    return bt_fail(lr == LZMA_MEM_ERROR ? BT_ERR_NOMEM : BT_ERR_ARG, "liblzma: cannot start a decoder (%d)", (int)lr);
  bt_error e = BT_OK;
  uint8_t *in = malloc(INBUF), *buf = NULL;
  size_t cap = cap0 < 4096 ? 4096 : cap0;
  if (cap > limit) cap = limit;
  if (cap == 0) cap = 1;
  if (in) buf = malloc(cap);
  if (!in || !buf) { e = bt_fail(BT_ERR_NOMEM, "cannot allocate %zu bytes to decode %s", cap, path); goto done; }
  strm.next_out = buf;
  strm.avail_out = cap;
  lzma_action action = LZMA_RUN;
  for (;;) {
    if (strm.avail_in == 0 && action == LZMA_RUN) {
      ssize_t r = read(fd, in, INBUF);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) { e = bt_fail(BT_ERR_IO, "cannot read %s: %s", path, strerror(errno)); goto done; }
      if (r == 0) action = LZMA_FINISH;
      strm.next_in = in;
      strm.avail_in = (size_t)r;
    }
    if (strm.avail_out == 0) {
      if (cap >= limit) { e = bt_fail(over_err, "%s decodes to more than %zu bytes", path, limit); goto done; }
      size_t ncap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
      if (ncap > limit) ncap = limit;
      uint8_t *nb = realloc(buf, ncap);
      if (!nb) { e = bt_fail(BT_ERR_NOMEM, "cannot allocate %zu bytes to decode %s", ncap, path); goto done; }
      buf = nb;
      strm.next_out = buf + cap;
      strm.avail_out = ncap - cap;
      cap = ncap;
    }
    lr = lzma_code(&strm, action);
    if (lr == LZMA_STREAM_END) break;
    if (lr == LZMA_OK) continue;
    switch (lr) {
    case LZMA_MEM_ERROR: e = bt_fail(BT_ERR_NOMEM, "out of memory decoding %s", path); break;
    case LZMA_MEMLIMIT_ERROR:
      e = bt_fail(BT_ERR_FORMAT, "%s needs more than %llu MiB to decode", path, (unsigned long long)(XZ_MEMLIMIT >> 20));
      break;
    case LZMA_FORMAT_ERROR: e = bt_fail(BT_ERR_FORMAT, "%s is not an .xz file", path); break;
    case LZMA_OPTIONS_ERROR: e = bt_fail(BT_ERR_FORMAT, "%s uses unsupported .xz options", path); break;
    case LZMA_BUF_ERROR: e = bt_fail(BT_ERR_CORRUPT, "%s is truncated", path); break;
    case LZMA_DATA_ERROR: e = bt_fail(BT_ERR_CORRUPT, "%s is corrupt (xz data or check error)", path); break;
    default: e = bt_fail(BT_ERR_CORRUPT, "%s: liblzma error %d", path, (int)lr); break;
    }
    goto done;
  }
  size_t len = (size_t)strm.total_out;
  if (len == 0) { e = bt_fail(BT_ERR_TOO_SHORT, "%s decodes to 0 bytes", path); goto done; }
  if (len < cap) {
    uint8_t *nb = realloc(buf, len);
    if (nb) buf = nb;
  }
  *out = buf;
  *n = len;
  buf = NULL;
done:
  lzma_end(&strm);
  free(in);
  free(buf);
  return e;
}

static bt_error xz_decode_file(const char *path, size_t limit, bt_error over_err, uint8_t **out, size_t *n) {
  int fd;
  bt_error e = open_read(path, &fd);
  if (e) return e;
  struct stat st;
  size_t hint = 1 << 20;
  /* text compresses about 4x: start there, grow by doubling */
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      (uintmax_t)st.st_size < (uintmax_t)SIZE_MAX / 8)
    hint = (size_t)st.st_size * 4;
  e = xz_decode_fd(fd, path, limit < SIZE_MAX ? limit : hint, limit, over_err, out, n);
  close(fd);
  return e;
}

/* ======================================================================== */
/* Checksums and the cache                                                   */
/* ======================================================================== */

/* hex_out receives the actual digest's hex. True if it equals want_hex. */
static int sha256_matches(const uint8_t *p, size_t n, const char *want_hex, char hex_out[65]) {
  uint8_t d[32];
  bt_sha256(p, n, d);
  bt_sha256_hex(d, hex_out);
  return strcmp(hex_out, want_hex) == 0;
}

static int md5_matches(const uint8_t *p, size_t n, const char *want_hex, char hex_out[65]) {
  uint8_t d[16];
  bt_md5(p, n, d);
  bt_hex(d, 16, hex_out);
  return strcmp(hex_out, want_hex) == 0;
}

/* Writes dir/name atomically (kernels/fileio.h), making dir if need be. */
static bt_error write_atomic(const char *dir, const char *name, const uint8_t *p, size_t n) {
  char final_path[PATH_MAX];
  bt_error e = path_join(final_path, dir, name);
  if (!e) e = bt_mkdir_p(dir);
  if (!e) e = bt_atomic_write(final_path, p, n);
  return e;
}

/* ======================================================================== */
/* The wiki corpora ($BT_DATA/text/NAME.txt.xz)                              */
/* ======================================================================== */

typedef struct {
  const char *name;      /* the spec */
  const char *file;      /* under the data folder */
  const char *cache;     /* decompressed copy's name in the cache folder */
  size_t size;           /* decompressed bytes */
  const char *sha256;    /* of the decompressed bytes, from data/README.md */
} wiki_set;

static const wiki_set WIKI[] = {
    {"wiki100m", "text/wiki100m.txt.xz", "wiki100m.txt", 100000000,
     "fce0658e43ca871e65f25a1aee8445aba71575de6fd36d59f806a1bbb271a312"},
    {"wiki-valid10m", "text/wiki-valid10m.txt.xz", "wiki-valid10m.txt", 10000000,
     "025ca3db77c0274e2ca9cd07ff45083d2c6fe07a909b849f5b1a1c0e53c1da2c"},
};

static bt_error load_wiki(const wiki_set *w, uint8_t **out, size_t *n) {
  char hex[65], cpath[PATH_MAX], xpath[PATH_MAX];
  const char *cdir = bt_cache_dir();
  int have_cache = cdir[0] && path_join(cpath, cdir, w->cache) == BT_OK;

  /* The cached copy, if it is exactly right; anything else is rebuilt. */
  struct stat st;
  if (have_cache && stat(cpath, &st) == 0 && S_ISREG(st.st_mode) && (uintmax_t)st.st_size == w->size) {
    uint8_t *buf;
    size_t len;
    if (read_file_range(cpath, 0, SIZE_MAX, &buf, &len) == BT_OK) {
      if (len == w->size && sha256_matches(buf, len, w->sha256, hex)) {
        *out = buf;
        *n = len;
        return BT_OK;
      }
      free(buf);
    }
  }

  bt_error e = path_join(xpath, bt_data_dir(), w->file);
  if (e) return e;
  if (access(xpath, R_OK) != 0)
    return bt_fail(BT_ERR_IO, "cannot open %s: %s (set BT_DATA to the data folder)", xpath, strerror(errno));
  uint8_t *buf;
  size_t len;
  /* one spare byte: a stream that is too long fails the size check below */
  e = xz_decode_file(xpath, w->size + 1, BT_ERR_CHECKSUM, &buf, &len);
  if (e) return e;
  if (len != w->size) {
    free(buf);
    return bt_fail(BT_ERR_CHECKSUM, "%s decodes to %zu bytes, expected %zu", xpath, len, w->size);
  }
  if (!sha256_matches(buf, len, w->sha256, hex)) {
    free(buf);
    return bt_fail(BT_ERR_CHECKSUM, "%s: sha256 %s, expected %s", xpath, hex, w->sha256);
  }
  /* Best effort: a read-only or full cache only costs the next load a decode. */
  if (have_cache) (void)write_atomic(cdir, w->cache, buf, len);
  *out = buf;
  *n = len;
  return BT_OK;
}

/* ======================================================================== */
/* enwik8 / enwik9: cache, else download with curl and extract with unzip   */
/* ======================================================================== */

typedef struct {
  const char *name;
  size_t size;
  const char *sha256; /* NULL where only an MD5 is published */
  const char *md5;    /* from mattmahoney.net/dc/textdata.html */
} enwik_set;

/* enwik8's sha256 is the one in data/README.md; for enwik9 the Large Text
 * Compression Benchmark's page lists only MD5 and SHA-1, so it is checked by
 * its MD5 (e206c345..., same page as enwik8's a1fa5ffd...). */
static const enwik_set ENWIK[] = {
    {"enwik8", 100000000, "2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8",
     "a1fa5ffddb56f4953e226637dabbb36a"},
    {"enwik9", 1000000000, NULL, "e206c3450ac99950df65bf70ef61a12d"},
};

/* Runs argv (argv[0] looked up in PATH) with stdin and stderr on /dev/null and
 * stdout on out_fd (or /dev/null if out_fd < 0). *status: the exit code, or
 * -1 if it died by a signal. Returns an errno value if it could not start. */
static int run_program(char *const argv[], int out_fd, int *status) {
  posix_spawn_file_actions_t fa;
  int err = posix_spawn_file_actions_init(&fa);
  if (err) return err;
  err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!err) {
    if (out_fd >= 0) err = posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    else err = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  }
  if (!err) err = posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  if (!err) err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (err) return err;
  int ws;
  while (waitpid(pid, &ws, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
  return 0;
}

static bt_error enwik_verify(const enwik_set *s, const char *path, const uint8_t *p, size_t len) {
  char hex[65];
  if (len != s->size)
    return bt_fail(BT_ERR_CHECKSUM, "%s has %zu bytes, but %s has %zu; delete it to fetch it again",
                   path, len, s->name, s->size);
  if (s->sha256 ? !sha256_matches(p, len, s->sha256, hex) : !md5_matches(p, len, s->md5, hex))
    return bt_fail(BT_ERR_CHECKSUM, "%s is not %s (%s %s, expected %s); delete it to fetch it again", path,
                   s->name, s->sha256 ? "sha256" : "md5", hex, s->sha256 ? s->sha256 : s->md5);
  return BT_OK;
}

/* Extracts s->name from zip into final_path (verified, atomically). */
static bt_error enwik_unzip(const enwik_set *s, const char *zip, const char *final_path,
                            uint8_t **out, size_t *n) {
  bt_atomic_file f;
  int status = 0;
  bt_error e = bt_atomic_begin(&f, final_path);
  if (e) return e;
  (void)fchmod(f.fd, 0644);
  const int fd = f.fd;
  const char *tmp = f.tmp;
  char *argv[] = {"unzip", "-p", "-qq", (char *)zip, (char *)s->name, NULL};
  int err = run_program(argv, fd, &status);
  uint8_t *buf = NULL;
  size_t len = 0;
  struct stat st;
  if (err)
    e = bt_fail(BT_ERR_IO, "cannot run unzip to extract %s: %s", zip, strerror(err));
  else if (status != 0)
    e = bt_fail(BT_ERR_CORRUPT, "cannot extract %s from %s (unzip exit %d)", s->name, zip, status);
  else if (fstat(fd, &st) != 0)
    e = bt_fail(BT_ERR_IO, "cannot stat %s: %s", tmp, strerror(errno));
  else if ((uintmax_t)st.st_size != s->size) /* check before reading a bomb */
    e = bt_fail(BT_ERR_CHECKSUM, "%s in %s has %jd bytes, expected %zu", s->name, zip, (intmax_t)st.st_size,
                s->size);
  else if (!(e = read_fd_range(fd, tmp, 0, SIZE_MAX, &buf, &len)))
    e = enwik_verify(s, zip, buf, len);
  if (e)
    bt_atomic_abort(&f);
  else
    e = bt_atomic_commit(&f, 1);
  if (e) {
    free(buf);
    return e;
  }
  *out = buf;
  *n = len;
  return BT_OK;
}

static bt_error load_enwik(const enwik_set *s, uint8_t **out, size_t *n) {
  char final_path[PATH_MAX], zip[PATH_MAX], part[PATH_MAX], url[1024];
  const char *cdir = bt_cache_dir();
  if (!cdir[0]) return bt_fail(BT_ERR_ARG, "the cache folder's path is too long");
  bt_error e = path_join(final_path, cdir, s->name);
  if (e) return e;

  struct stat st;
  if (stat(final_path, &st) == 0) {
    uint8_t *buf;
    size_t len;
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size != s->size) /* before reading it */
      return bt_fail(BT_ERR_CHECKSUM, "%s has %jd bytes, but %s has %zu; delete it to fetch it again",
                     final_path, (intmax_t)st.st_size, s->name, s->size);
    e = read_file_range(final_path, 0, SIZE_MAX, &buf, &len);
    if (e) return e;
    e = enwik_verify(s, final_path, buf, len);
    if (e) { free(buf); return e; }
    *out = buf;
    *n = len;
    return BT_OK;
  }
  if (errno != ENOENT) return bt_fail(BT_ERR_IO, "cannot stat %s: %s", final_path, strerror(errno));

  /* A zip the user put in the cache is used, never deleted. */
  char name_zip[64];
  snprintf(name_zip, sizeof name_zip, "%s.zip", s->name);
  if ((e = path_join(zip, cdir, name_zip))) return e;
  if (stat(zip, &st) == 0 && S_ISREG(st.st_mode)) return enwik_unzip(s, zip, final_path, out, n);

  const char *base = env_nonempty("BT_ENWIK_URL");
  if (!base) base = "http://mattmahoney.net/dc/";
  int r = snprintf(url, sizeof url, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/", name_zip);
  if (r < 0 || (size_t)r >= sizeof url) return bt_fail(BT_ERR_ARG, "BT_ENWIK_URL is too long");
  const char *offline = getenv("BT_OFFLINE");
  if (offline && strcmp(offline, "1") == 0)
    return bt_fail(BT_ERR_NETWORK,
                   "BT_OFFLINE=1: not downloading %s from %s; download it yourself and pass --data PATH, "
                   "or put it at %s",
                   s->name, url, final_path);

  if ((e = bt_mkdir_p(cdir))) return e;
  snprintf(name_zip, sizeof name_zip, "%s.zip.part", s->name);
  if ((e = path_join(part, cdir, name_zip))) return e;
  /* Connecting must succeed within 10 s, so an offline machine fails fast;
   * a stalled transfer (< 1 KB/s for 60 s) is abandoned; the whole download
   * gets an hour (enwik9.zip is 322 MB). */
  char *argv[] = {"curl", "-f", "-s", "-L", "--proto", "=http,https,file", "--connect-timeout", "10",
                  "--speed-limit", "1024", "--speed-time", "60", "--max-time", "3600",
                  "-o", part, url, NULL};
  int status = 0;
  int err = run_program(argv, -1, &status);
  if (err || status != 0) {
    unlink(part);
    char why[64];
    if (err) snprintf(why, sizeof why, "cannot run curl: %s", strerror(err));
    else snprintf(why, sizeof why, "curl exit %d", status);
    return bt_fail(BT_ERR_NETWORK,
                   "cannot download %s from %s (%s; no network?); download it yourself and pass --data PATH, "
                   "or put it at %s",
                   s->name, url, why, final_path);
  }
  e = enwik_unzip(s, part, final_path, out, n);
  unlink(part); /* the zip is not needed once extracted, nor after a failure */
  return e;
}

/* ======================================================================== */
/* Entry points                                                              */
/* ======================================================================== */

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Keeps [offset, offset + max) of buf (len bytes); frees buf on error. */
static bt_error slice(const char *spec, uint8_t *buf, size_t len, size_t offset, size_t max,
                      uint8_t **out, size_t *n) {
  if (offset >= len || max == 0) {
    free(buf);
    return bt_fail(BT_ERR_TOO_SHORT, "%s has %zu bytes, nothing at offset %zu", spec, len, offset);
  }
  size_t k = len - offset < max ? len - offset : max;
  if (offset) memmove(buf, buf + offset, k);
  if (k < len) {
    uint8_t *nb = realloc(buf, k);
    if (nb) buf = nb;
  }
  *out = buf;
  *n = k;
  return BT_OK;
}

bt_error bt_data_load_range(const char *spec, size_t offset, size_t max_bytes, uint8_t **bytes, size_t *n) {
  if (bytes) *bytes = NULL;
  if (n) *n = 0;
  if (!spec || !*spec || !bytes || !n) return bt_fail(BT_ERR_ARG, "bt_data_load: no data set named");
  if (max_bytes == 0) return bt_fail(BT_ERR_TOO_SHORT, "%s: empty range requested", spec);

  uint8_t *buf = NULL;
  size_t len = 0;
  bt_error e;
  for (size_t i = 0; i < sizeof WIKI / sizeof WIKI[0]; i++)
    if (strcmp(spec, WIKI[i].name) == 0) {
      if ((e = load_wiki(&WIKI[i], &buf, &len))) return e;
      return slice(spec, buf, len, offset, max_bytes, bytes, n);
    }
  for (size_t i = 0; i < sizeof ENWIK / sizeof ENWIK[0]; i++)
    if (strcmp(spec, ENWIK[i].name) == 0) {
      if ((e = load_enwik(&ENWIK[i], &buf, &len))) return e;
      return slice(spec, buf, len, offset, max_bytes, bytes, n);
    }
  if (ends_with(spec, ".xz")) {
    if ((e = xz_decode_file(spec, SIZE_MAX, BT_ERR_NOMEM, &buf, &len))) return e;
    return slice(spec, buf, len, offset, max_bytes, bytes, n);
  }
  return read_file_range(spec, offset, max_bytes, bytes, n);
}

bt_error bt_data_load(const char *spec, uint8_t **bytes, size_t *n) {
  return bt_data_load_range(spec, 0, SIZE_MAX, bytes, n);
}
