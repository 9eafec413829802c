/* fileio.c - atomic file writes, and one writer a file (fileio.h). */
#define _GNU_SOURCE
#include "kernels/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* path's folder ("." for a bare name, "/" for the root). */
static void dir_of(const char *path, char *dir, size_t cap) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(dir, cap, ".");
  else if (slash == path)
    snprintf(dir, cap, "/");
  else
    snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

int bt_write_full(int fd, const void *p, size_t n) {
  const char *b = p;
  while (n) {
    ssize_t k = write(fd, b, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30));
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      if (k == 0)
        errno = 0;
      return -1;
    }
    b += k;
    n -= (size_t)k;
  }
  return 0;
}

int bt_read_full(int fd, void *p, size_t n) {
  char *b = p;
  while (n) {
    ssize_t k = read(fd, b, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      if (k == 0)
        errno = 0;
      return -1;
    }
    b += k;
    n -= (size_t)k;
  }
  return 0;
}

int bt_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

bt_error bt_atomic_begin(bt_atomic_file *f, const char *path) {
  f->fd = -1;
  f->tmp[0] = '\0';
  if (snprintf(f->dst, sizeof f->dst, "%s", path) >= (int)sizeof f->dst)
    return bt_fail(BT_ERR_ARG, "path too long: %.200s", path);
  char dir[PATH_MAX];
  dir_of(path, dir, sizeof dir);
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  long name_max = pathconf(dir, _PC_NAME_MAX);
  if (name_max <= 0 || name_max > 255)
    name_max = 255;
  int keep = (int)name_max - 8; /* "." + NAME + ".XXXXXX" */
  if (keep > 200)
    keep = 200;
  if (keep < 1)
    keep = 1;
  if (snprintf(f->tmp, sizeof f->tmp, "%s/.%.*s.XXXXXX", dir, keep, base) >= (int)sizeof f->tmp)
    return bt_fail(BT_ERR_ARG, "path too long: %.200s", path);
  f->fd = mkostemp(f->tmp, O_CLOEXEC);
  if (f->fd < 0) {
    int err = errno;
    f->tmp[0] = '\0';
    return bt_fail(BT_ERR_IO, "cannot create a temporary file in %s: %s", dir, strerror(err));
  }
  return BT_OK;
}

int bt_atomic_umask_mode(bt_atomic_file *f) {
  const mode_t um = umask(0); /* read it: it can only be read by setting it */
  umask(um);
  return fchmod(f->fd, 0666 & ~um);
}

void bt_atomic_abort(bt_atomic_file *f) {
  if (f->fd >= 0)
    close(f->fd);
  f->fd = -1;
  if (f->tmp[0])
    unlink(f->tmp);
  f->tmp[0] = '\0';
}

bt_error bt_atomic_commit(bt_atomic_file *f, int replace) {
  bt_error e = BT_OK;
  if (f->fd >= 0) {
    if (fsync(f->fd) != 0)
      e = bt_fail(BT_ERR_IO, "cannot sync %s: %s", f->dst, strerror(errno));
    if (close(f->fd) != 0 && !e)
      e = bt_fail(BT_ERR_IO, "cannot write %s: %s", f->dst, strerror(errno));
    f->fd = -1;
  }
  if (!e) {
    int r;
    if (replace) {
      r = rename(f->tmp, f->dst);
    } else {
      r = renameat2(AT_FDCWD, f->tmp, AT_FDCWD, f->dst, RENAME_NOREPLACE);
      if (r != 0 && (errno == EINVAL || errno == ENOSYS)) { /* file systems without it */
        r = link(f->tmp, f->dst);
        if (r == 0)
          unlink(f->tmp);
      }
    }
    if (r != 0) {
      int err = errno;
      e = bt_fail(BT_ERR_IO, "%s %s: %s", err == EEXIST ? "not replacing" : "cannot rename onto", f->dst,
                  strerror(err));
      errno = err;
    }
  }
  if (e) {
    int err = errno;
    bt_atomic_abort(f);
    errno = err;
    return e;
  }
  f->tmp[0] = '\0';
  char dir[PATH_MAX];
  dir_of(f->dst, dir, sizeof dir);
  if (bt_fsync_dir(dir) != 0)
    return bt_fail(BT_ERR_IO, "cannot sync folder %s: %s", dir, strerror(errno));
  return BT_OK;
}

bt_error bt_atomic_write(const char *path, const void *p, size_t n) {
  bt_atomic_file f;
  bt_error e = bt_atomic_begin(&f, path);
  if (e)
    return e;
  if (bt_atomic_umask_mode(&f) || bt_write_full(f.fd, p, n)) {
    const int err = errno;
    bt_atomic_abort(&f);
    return bt_fail(BT_ERR_IO, "cannot write %s: %s", path, err ? strerror(err) : "no progress");
  }
  return bt_atomic_commit(&f, 1);
}

bt_error bt_lock_beside(const char *path) {
  char lock[PATH_MAX + 8];
  if (snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock)
    return bt_fail(BT_ERR_ARG, "path too long: %s", path);
  const int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0)
    return bt_fail(BT_ERR_IO, "cannot create %s: %s", lock, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char pid[32] = "";
    const ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
    pid[k > 0 ? k : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(fd);
    errno = err;
    if (err == EWOULDBLOCK)
      return bt_fail(BT_ERR_IO, "%s is being written by another process (pid %s; lock %s)", path,
                     pid[0] ? pid : "unknown", lock);
    return bt_fail(BT_ERR_IO, "cannot lock %s: %s", lock, strerror(err));
  }
  char pid[32];
  const int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || bt_write_full(fd, pid, (size_t)n) != 0) {
    const int err = errno;
    close(fd);
    return bt_fail(BT_ERR_IO, "cannot write %s: %s", lock, strerror(err));
  }
  return BT_OK; /* fd stays open: the lock is the process's until it exits */
}
