/*
 * fileio.h - bt's one way to write a file so that readers see either the old
 * file or the complete new one, never a part: a temporary file beside it,
 * fsync, rename, fsync of the folder. Used by bt-compress, the checkpoint
 * writer and the data caches.
 *
 *   bt_atomic_file f;
 *   if (bt_atomic_begin(&f, "out.bt")) ...;      f.fd is open for writing
 *   write(f.fd, ...);                            (or close it and let a
 *   if (bt_atomic_commit(&f, 1)) ...;             library write f.tmp)
 *
 * or, for a buffer in memory, bt_atomic_write(path, p, n). A file that one
 * process replaces again and again (bt-train's checkpoint) is claimed first
 * with bt_lock_beside(path), so no second writer can take turns with it.
 */
#ifndef BT_FILEIO_H
#define BT_FILEIO_H

#include <limits.h>
#include <stddef.h>

#include "kernels/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  char tmp[PATH_MAX + 16]; /* the temporary file: DIR/.NAME.XXXXXX */
  char dst[PATH_MAX];      /* where it goes */
  int fd;                  /* open for writing, or -1 once the caller closed it */
} bt_atomic_file;

/* Creates the temporary file beside path (mode 0600, close-on-exec), named
 * by mkstemp ".NAME.XXXXXX" with NAME cut so the whole fits the folder's
 * NAME_MAX (a 250-byte name still gets one). Unique, so a leftover from a
 * killed run never blocks the next. BT_ERR_IO or BT_ERR_ARG otherwise. */
bt_error bt_atomic_begin(bt_atomic_file *f, const char *path);

/* Gives the temporary file the mode a new file gets from open(2): 0666
 * less the umask (what gzip and xz give their outputs). 0, or -1 with
 * errno set. */
int bt_atomic_umask_mode(bt_atomic_file *f);

/* fsyncs and closes f->fd (unless the caller set it to -1 after closing it
 * itself, having synced what it wrote), renames the temporary file onto dst
 * and fsyncs the folder. replace = 0 never replaces an existing dst, even
 * one that appeared meanwhile (BT_ERR_IO with errno EEXIST). On any error
 * the temporary file is removed. */
bt_error bt_atomic_commit(bt_atomic_file *f, int replace);

/* Closes (if open) and removes the temporary file. */
void bt_atomic_abort(bt_atomic_file *f);

/* The whole sequence for a buffer already in memory: begin, the umask's
 * mode, n bytes, commit (replacing path). BT_OK, or the error with path in
 * its detail; path then still holds what it held before. */
bt_error bt_atomic_write(const char *path, const void *p, size_t n);

/* Writes or reads exactly n bytes of fd, through short counts and EINTR
 * (writes in pieces of at most 1 GiB). 0, or -1 with errno set (0 when
 * the file ended or took no bytes). */
int bt_write_full(int fd, const void *p, size_t n);
int bt_read_full(int fd, void *p, size_t n);

/* fsyncs a folder, so a rename or unlink in it survives a crash. */
int bt_fsync_dir(const char *dir);

/* Claims path for this process alone, so two writers of one file (two
 * bt-train runs on one checkpoint) cannot take turns replacing it: an
 * exclusive flock(2) on "path.lock", created beside it (and left there: a
 * lock file removed while held could be claimed twice), holding the
 * owner's pid. The lock lasts until the process exits, however it exits.
 * Returns BT_OK, or BT_ERR_IO: with errno EWOULDBLOCK and the holder's pid
 * in the detail when another process holds it, or when the lock file cannot
 * be made. */
bt_error bt_lock_beside(const char *path);

#ifdef __cplusplus
}
#endif
#endif
