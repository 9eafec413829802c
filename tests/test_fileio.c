/*
 * test_fileio.c - bt_atomic_write (kernels/fileio.h): a file is either the
 * old one or the whole new one. Each failure (a write cut short by the file
 * size limit, a rename onto a folder, a folder that does not exist) must
 * leave the old contents and no temporary file, and say which path.
 */
#define _GNU_SOURCE
#include "tests/check.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/fileio.h"

static char dir[] = "/tmp/bt_test_fileio.XXXXXX";

/* The names in dir other than . and .. */
static int entries(void) {
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

/* 1 if path holds exactly n bytes equal to p */
static int holds(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0;
  char *b = malloc(n + 1);
  size_t got = fread(b, 1, n + 1, f);
  fclose(f);
  int ok = got == n && memcmp(b, p, n) == 0;
  free(b);
  return ok;
}

int main(void) {
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  char path[256], sub[256];
  snprintf(path, sizeof path, "%s/out.bin", dir);
  snprintf(sub, sizeof sub, "%s/folder", dir);

  /* a new file, with the mode open(2) would give it */
  static char big[1 << 20];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)(i * 131 + (i >> 9));
  const mode_t um = umask(027);
  CHECK(bt_atomic_write(path, big, sizeof big) == BT_OK, "%s", bt_error_detail());
  CHECK(holds(path, big, sizeof big), "the new file holds what was written");
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640, "mode %o under umask 027", st.st_mode & 0777);
  umask(um);
  CHECK(entries() == 1, "no temporary file left (%d entries)", entries());

  /* replacing, and an empty buffer */
  const char small[] = "the old contents\n";
  CHECK(bt_atomic_write(path, small, sizeof small - 1) == BT_OK, "%s", bt_error_detail());
  CHECK(holds(path, small, sizeof small - 1), "replaced");
  char empty_path[256];
  snprintf(empty_path, sizeof empty_path, "%s/empty", dir);
  CHECK(bt_atomic_write(empty_path, "", 0) == BT_OK && holds(empty_path, "", 0), "an empty file");
  unlink(empty_path);

  /* a write cut short (the file size limit, as a full disk would) keeps the old file */
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit old_lim, lim = {4096, 4096};
  getrlimit(RLIMIT_FSIZE, &old_lim);
  lim.rlim_max = old_lim.rlim_max;
  CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
  bt_error e = bt_atomic_write(path, big, sizeof big);
  setrlimit(RLIMIT_FSIZE, &old_lim);
  CHECK(e == BT_ERR_IO, "a cut write fails with BT_ERR_IO (got %d)", (int)e);
  CHECK(strstr(bt_error_detail(), path) != NULL, "the detail names the path: %s", bt_error_detail());
  CHECK(holds(path, small, sizeof small - 1), "the old contents survive a cut write");
  CHECK(entries() == 1, "no temporary file left after a cut write (%d entries)", entries());

  /* a rename that fails (onto a folder that is not empty) */
  CHECK(mkdir(sub, 0700) == 0, "mkdir");
  char inner[300];
  snprintf(inner, sizeof inner, "%s/x", sub);
  CHECK(bt_atomic_write(inner, "x", 1) == BT_OK, "%s", bt_error_detail());
  e = bt_atomic_write(sub, small, sizeof small - 1);
  CHECK(e == BT_ERR_IO, "writing onto a folder fails (got %d)", (int)e);
  CHECK(strstr(bt_error_detail(), sub) != NULL, "the detail names the path: %s", bt_error_detail());
  CHECK(holds(inner, "x", 1) && entries() == 2, "the folder is untouched and no temporary file left");

  /* a folder that does not exist */
  char missing[300];
  snprintf(missing, sizeof missing, "%s/no/such/file", dir);
  e = bt_atomic_write(missing, small, 1);
  CHECK(e == BT_ERR_IO && strstr(bt_error_detail(), "/no/such") != NULL, "missing folder: %d %s", (int)e,
        bt_error_detail());

  /* bt_lock_beside: a second claim on the same path is refused, naming the
   * holder; another path is free (flock locks each open of the file, so a
   * second claim from this process is refused like one from another). */
  char lock[320], pid[32], other[300];
  snprintf(lock, sizeof lock, "%s.lock", path);
  snprintf(other, sizeof other, "%s/other", dir);
  CHECK(bt_lock_beside(path) == BT_OK, "%s", bt_error_detail());
  snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  CHECK(holds(lock, pid, strlen(pid)), "the lock file holds the pid");
  e = bt_lock_beside(path);
  snprintf(pid, sizeof pid, "(pid %ld;", (long)getpid());
  CHECK(e == BT_ERR_IO && errno == EWOULDBLOCK && strstr(bt_error_detail(), "being written by another process") &&
            strstr(bt_error_detail(), pid),
        "a second claim is refused: %d %s", (int)e, bt_error_detail());
  CHECK(bt_lock_beside(other) == BT_OK, "another path is free: %s", bt_error_detail());
  CHECK(bt_lock_beside(missing) == BT_ERR_IO && strstr(bt_error_detail(), "cannot create"), "a lock in a missing folder: %s",
        bt_error_detail());

  unlink(inner);
  rmdir(sub);
  unlink(path);
  unlink(lock);
  snprintf(lock, sizeof lock, "%s.lock", other);
  unlink(lock);
  CHECK(rmdir(dir) == 0, "the test folder ends empty");
  return check_summary("test_fileio");
}
