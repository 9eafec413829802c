/*
 * test_h5r.c - bt's own HDF5 reader (train/h5r.h) against real checkpoints
 * and damaged copies of them.
 *
 * The golden checkpoints must parse, every dataset of them read (the
 * loader's weights-hash check, in the other tests, shows the bytes are the
 * ones libhdf5 wrote). Then about 1,200 truncations and 20,000 byte
 * mutations of a small checkpoint are walked the same way: each must come
 * back as an error code or a clean parse, never a read outside the buffer
 * (the ASan build checks that), and never a loop.
 */
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/h5r.h"
#include "train/model.h"

static uint8_t *slurp(const char *path, uint64_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc((size_t)len);
  if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
    free(p);
    p = NULL;
  }
  fclose(f);
  *n = (uint64_t)len;
  return p;
}

typedef struct {
  int tensors;      /* datasets read */
  uint64_t bytes;   /* their bytes */
  uint64_t digest;  /* a hash of what was read */
} walk_result;

static void mix(walk_result *r, const uint8_t *p, uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    r->digest = (r->digest ^ p[i]) * 0x100000001b3ull;
}

/* Reads the datasets of bt's tensor names (and the log, and a BPE model's
 * tokenizer) in group g. */
static bt_error walk_group(const h5r_file *f, const h5r_obj *g, walk_result *r) {
  bt_config cfg;
  bt_tensor_info layout[BT_NUM_TENSORS];
  bt_config_preset("200K", &cfg);
  bt_param_layout(&cfg, layout);
  h5r_obj *d = malloc(sizeof *d);
  bt_error e = BT_OK;
  for (int t = 0; t <= BT_NUM_TENSORS + 1 && !e; t++) {
    uint64_t addr;
    int soft;
    bt_error te = h5r_child(f, g, t < BT_NUM_TENSORS ? layout[t].name : t == BT_NUM_TENSORS ? "log" : "tokenizer",
                            &addr, &soft);
    if (te == BT_ERR_NOT_FOUND)
      continue;
    if ((e = te) || (e = h5r_object(f, addr, d)))
      break;
    if (!d->is_dataset)
      continue;
    uint64_t np = 1, stored;
    for (int i = 0; i < d->ndim; i++)
      np = d->dims[i] && np > (1ull << 40) / d->dims[i] ? (1ull << 41) : np * d->dims[i];
    if ((e = h5r_storage_size(f, d, &stored)))
      break;
    if (np * d->type.size > (64u << 20)) /* the loader bounds sizes by the file first */
      continue;
    uint8_t *buf = malloc(np * d->type.size + 1);
    if ((e = h5r_read(f, d, buf, np * d->type.size)) == BT_OK) {
      r->tensors++;
      r->bytes += np * d->type.size;
      mix(r, buf, np * d->type.size);
    }
    free(buf);
  }
  free(d);
  return e;
}

/* The way the loader walks a checkpoint: the root's attributes, /params,
 * /train with its moments and log. */
static bt_error walk(const h5r_file *f, walk_result *r) {
  static const char *const groups[] = {"params", "train", "train/adam_m", "train/adam_v"};
  h5r_obj *root = malloc(sizeof *root), *g = malloc(sizeof *g), *sub = malloc(sizeof *sub);
  bt_error e = h5r_object(f, f->root, root);
  int64_t i64;
  char s[64];
  if (!e) {
    h5r_attr_i64(root, "d_model", &i64);
    h5r_attr_str(root, "format", s, sizeof s);
  }
  if (!e)
    e = walk_group(f, root, r); /* /tokenizer */
  int have_train = 0;
  for (size_t k = 0; k < 4 && !e; k++) {
    uint64_t addr;
    int soft;
    const char *name = groups[k];
    const h5r_obj *parent = root;
    if (!strncmp(name, "train/", 6)) {
      if (!have_train)
        break;
      parent = g; /* /train, from the step before */
      name += 6;
    }
    bt_error ge = h5r_child(f, parent, name, &addr, &soft);
    if (ge == BT_ERR_NOT_FOUND)
      continue;
    h5r_obj *into = k == 1 ? g : sub;
    if ((e = ge) || (e = h5r_object(f, addr, into)))
      break;
    if (k == 1) {
      have_train = 1;
      h5r_attr_i64(g, "step", &i64);
    }
    e = walk_group(f, into, r);
  }
  free(root);
  free(g);
  free(sub);
  return e;
}

int main(void) {
  const char *src = getenv("BT_SOURCE_DIR");
  char path[4096];
  static const char *golden[] = {"checkpoints/bt-200K.h5", "tests/corpus/ckpt/ok-f16.h5",
                                 "tests/corpus/ckpt/ok-train.h5", "tests/corpus/ckpt/ok-train-v2-wsd.h5",
                                 "tests/corpus/ckpt/ok-train-v3-seq.h5", "tests/corpus/ckpt/ok-train-v4-bf16.h5",
                                 "tests/corpus/ckpt/ok-train-v5-bpe.h5"};
  for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", golden[i]);
    uint64_t n;
    uint8_t *p = slurp(path, &n);
    CHECK(p != NULL, "read %s", path);
    if (!p)
      continue;
    h5r_file f;
    walk_result r = {0, 0, 0};
    bt_error e = h5r_open(&f, p, n);
    if (!e)
      e = walk(&f, &r);
    CHECK(e == BT_OK, "%s: %s", golden[i], bt_error_detail());
    /* the model's tensors; a training state adds two moments of each, and its log */
    /* and a BPE model its tokenizer */
    const int want = (strstr(golden[i], "train") ? 3 * BT_NUM_TENSORS + 1 : BT_NUM_TENSORS) +
                     (strstr(golden[i], "bpe") != NULL);
    CHECK(r.tensors == want, "%s: %d datasets read, expected %d", golden[i], r.tensors, want);
    free(p);
  }

  /* Damage: a small training checkpoint, truncated and mutated. */
  snprintf(path, sizeof path, "%s/tests/corpus/ckpt/ok-train.h5", src ? src : ".");
  uint64_t n;
  uint8_t *orig = slurp(path, &n);
  CHECK(orig != NULL, "read %s", path);
  if (!orig)
    return check_summary("test_h5r");
  walk_result ref = {0, 0, 0};
  h5r_file f;
  CHECK(h5r_open(&f, orig, n) == BT_OK && walk(&f, &ref) == BT_OK, "the original parses");
  int errors = 0, clean = 0;
  /* Truncations: the metadata lives in the first KB and the last ones. */
  for (uint64_t len = 0; len < n; len += len < 4096 ? 7 : len > n - 8192 ? 13 : 4093) {
    uint8_t *p = malloc(len ? len : 1);
    memcpy(p, orig, len);
    walk_result r = {0, 0, 0};
    bt_error e = h5r_open(&f, p, len);
    if (!e)
      e = walk(&f, &r);
    e ? errors++ : clean++;
    free(p);
  }
  CHECK(errors > 0, "truncations: %d refused, %d parsed", errors, clean);
  /* Mutations: one to four bytes of the HDF5 metadata at a time. */
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  uint8_t *p = malloc(n);
  int changed = 0;
  for (int it = 0; it < 20000; it++) {
    memcpy(p, orig, n);
    const int k = 1 + it % 4;
    for (int j = 0; j < k; j++) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      /* mostly the first 4 KB (superblock, root, groups, heaps), sometimes anywhere */
      uint64_t at = (rng >> 33) % (it % 5 ? 4096 : n);
      p[at] = (uint8_t)(rng >> 17) ^ (it % 3 ? 0xff : (uint8_t)(1u << (rng >> 61)));
    }
    walk_result r = {0, 0, 0};
    bt_error e = h5r_open(&f, p, n);
    if (!e)
      e = walk(&f, &r);
    if (e)
      errors++;
    else if (r.digest != ref.digest || r.tensors != ref.tensors)
      changed++;
  }
  CHECK(errors > 1000, "mutations: %d refused", errors);
  printf("test_h5r: %d damaged files refused, %d parsed (%d of them to other data)\n", errors,
         20000 + clean - errors, changed);
  free(p);
  free(orig);
  return check_summary("test_h5r");
}
