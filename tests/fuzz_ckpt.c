/*
 * fuzz_ckpt.c - libFuzzer target for the checkpoint loader and the
 * training-state reader (train/ckpt.c), through libhdf5.
 *
 * The file checksum stops damage, not malice: anyone can reseal a file. So
 * each input is loaded twice: as it is (the user-block check), and resealed
 * with its true size and SHA-256, so the fuzzer reaches libhdf5, the
 * attribute ranges, the dataset checks and the reads. Whatever loads must
 * be a model that could be used: a config that passes bt_config_check and
 * a training state that passes bt_train_state_check.
 *
 * Builds (tests/CMakeLists via BT_FUZZ=ON with clang):
 *   fuzz_ckpt -max_total_time=600 WORKDIR tests/corpus/ckpt
 *   standalone (-DBT_FUZZ_STANDALONE): fuzz_ckpt_replay [FILE|DIR]...
 *     "ok-*" must load; "bad-<error>-*" must fail with that error
 *     (bad-corrupt-*, bad-format-*, bad-mismatch-*), resealed or not as the
 *     name says ("-resealed" files are resealed before loading); others
 *     are only run.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/hash.h"
#include "train/ckpt.h"

#define UB 512

static char g_path[256];

static const char *scratch_path(void) {
  if (!g_path[0]) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_path, sizeof g_path, "%s/bt-fuzz-ckpt-%ld.h5", dir, (long)getpid());
  }
  return g_path;
}

static int write_file(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int ok = fwrite(p, 1, n, f) == n;
  return fclose(f) == 0 && ok ? 0 : -1;
}

/* The user block an honest writer (or an attacker) would put in front. */
static void reseal(uint8_t *p, size_t n) {
  memcpy(p, "BTCKPT1\n", 8);
  for (int i = 0; i < 8; i++) p[8 + i] = (uint8_t)((uint64_t)n >> (8 * i));
  bt_sha256(p + UB, n - UB, p + 16);
}

/* Loads path with and without the training state; returns the first
 * error. Anything that loads must be usable. */
static bt_error load(const char *path) {
  bt_model *m = NULL;
  bt_train_state st;
  bt_error e = bt_ckpt_load(path, &m, &st);
  if (!e) {
    assert(bt_config_check(bt_model_config(m)) == BT_OK);
    if (st.total_steps) assert(bt_train_state_check(&st, bt_model_config(m)) == BT_OK);
    assert(st.log_rows == 0 || st.log != NULL);
    bt_train_state_clear(&st);
    bt_model_free(m);
  }
  bt_model *m2 = NULL;
  bt_error e2 = bt_ckpt_load(path, &m2, NULL);
  bt_model_free(m2);
  bt_config cfg;
  uint8_t sha[32];
  bt_ckpt_read_info(path, &cfg, sha);
  return e ? e : e2;
}

/* Loading parses with bt's own HDF5 reader (train/h5r.h), in this process:
 * every crash or sanitizer report is a finding. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = scratch_path();
  if (write_file(path, data, size) == 0) load(path);
  if (size >= UB) {
    uint8_t *p = malloc(size);
    if (!p) return 0;
    memcpy(p, data, size);
    reseal(p, size);
    if (write_file(path, p, size) == 0) load(path);
    free(p);
  }
  unlink(path);
  return 0;
}

#ifdef BT_FUZZ_STANDALONE
#include "tests/fuzz_replay.h"

/* ---- replay: ctest runs the seed corpus through the same code ---- */

static int g_fail, g_run;

static void run_path(const char *path, const char *name) {
  size_t n = 0;
  uint8_t *p = replay_read_all(path, &n);
  if (!p) {
    fprintf(stderr, "FAIL: cannot read %s\n", path);
    g_fail++;
    return;
  }
  g_run++;
  LLVMFuzzerTestOneInput(p, n);
  bt_error want = BT_OK;
  int check = 1;
  if (!strncmp(name, "ok-", 3)) want = BT_OK;
  else if (!strncmp(name, "bad-corrupt-", 12)) want = BT_ERR_CORRUPT;
  else if (!strncmp(name, "bad-format-", 11)) want = BT_ERR_FORMAT;
  else if (!strncmp(name, "bad-mismatch-", 13)) want = BT_ERR_MISMATCH;
  else check = 0;
  if (check) {
    if (strstr(name, "-resealed") && n >= UB) reseal(p, n);
    const char *tmp = scratch_path();
    bt_error got = write_file(tmp, p, n) == 0 ? load(tmp) : BT_ERR_IO;
    unlink(tmp);
    if (got != want) {
      fprintf(stderr, "FAIL: %s: got %s (%s), expected %s\n", name, bt_error_name(got), bt_error_detail(),
              bt_error_name(want));
      g_fail++;
    }
  }
  free(p);
}

static void run_file(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  run_path(path, name);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (replay_each(argv[i], run_file) != 0) { /* a single file */
      const char *s = strrchr(argv[i], '/');
      run_path(argv[i], s ? s + 1 : argv[i]);
    }
  printf("fuzz_ckpt replay: %d files, %d failed\n", g_run, g_fail);
  return g_fail || !g_run ? 1 : 0;
}
#endif
