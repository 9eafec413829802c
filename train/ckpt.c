/* ckpt.c - HDF5 checkpoints: atomic writes, checked reads (see ckpt.h). */
#include "train/ckpt.h"

#include "data/bpe.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/fileio.h"
#include "kernels/hash.h"
#include "train/h5r.h"

#define UB_SIZE 512
#define UB_MAGIC "BTCKPT1\n"
#define FORMAT_NAME "bt-checkpoint"
#define FORMAT_VERSION 7 /* read: 1 to 7 (ckpt.h) */

/* ==================================================================== */
/* float16 <-> float32, own code so the rounding is ours everywhere      */
/* ==================================================================== */

static uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7FFFFFFF;
  if (ax >= 0x7F800000) /* inf or nan */
    return (uint16_t)(sign | 0x7C00 | (ax > 0x7F800000 ? 0x200 : 0));
  if (ax >= 0x477FF000) /* rounds to >= 65520: overflow */
    return (uint16_t)(sign | 0x7C00);
  if (ax < 0x38800000) { /* subnormal half (or zero) */
    if (ax < 0x33000000)
      return (uint16_t)sign;
    uint32_t mant = (ax & 0x7FFFFF) | 0x800000;
    int shift = 126 - (int)(ax >> 23); /* 14..24 */
    uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    q += (rem > half || (rem == half && (q & 1)));
    return (uint16_t)(sign | q);
  }
  uint32_t q = ((ax - 0x38000000) >> 13), rem = ax & 0x1FFF;
  q += (rem > 0x1000 || (rem == 0x1000 && (q & 1)));
  return (uint16_t)(sign | q);
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, mant = h & 0x3FF, x;
  if (e == 0x1F)
    x = sign | 0x7F800000 | (mant << 13);
  else if (e)
    x = sign | ((e + 112) << 23) | (mant << 13);
  else if (!mant)
    x = sign;
  else { /* subnormal: normalise */
    e = 113;
    while (!(mant & 0x400)) {
      mant <<= 1;
      e--;
    }
    x = sign | (e << 23) | ((mant & 0x3FF) << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

void bt_ckpt_round_f16(bt_model *m) {
  float *p = bt_model_params(m);
  for (size_t i = 0, n = bt_model_num_params(m); i < n; i++)
    p[i] = f16_to_f32(f32_to_f16(p[i]));
}

void bt_model_weights_sha256(bt_model *m, uint8_t out[32]) {
  /* x86-64 and every target we build for are little-endian */
  bt_sha256(bt_model_params(m), bt_model_num_params(m) * sizeof(float), out);
}

void bt_train_state_clear(bt_train_state *st) {
  if (!st)
    return;
  free(st->log);
  st->log = NULL;
  st->log_rows = 0;
}

/* ==================================================================== */
/* HDF5 helpers                                                         */
/* ==================================================================== */

static hid_t f16_type(void) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, 15);
  return t;
}

static int attr_put(hid_t obj, const char *name, hid_t type, const void *val) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  int ok = a >= 0 && H5Awrite(a, type, val) >= 0;
  if (a >= 0)
    H5Aclose(a);
  H5Sclose(sp);
  return ok ? 0 : -1;
}
static int put_i64(hid_t o, const char *n, int64_t v) { return attr_put(o, n, H5T_NATIVE_INT64, &v); }
static int put_u64(hid_t o, const char *n, uint64_t v) { return attr_put(o, n, H5T_NATIVE_UINT64, &v); }
static int put_f64(hid_t o, const char *n, double v) { return attr_put(o, n, H5T_NATIVE_DOUBLE, &v); }
static int put_str(hid_t o, const char *n, const char *s) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(s) + 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  int r = attr_put(o, n, t, s);
  H5Tclose(t);
  return r;
}

/* Reading goes through bt's own HDF5 reader (train/h5r.h), never libhdf5:
 * a checkpoint may be hostile. An object is its parsed header and the file. */
typedef struct {
  const h5r_file *f;
  h5r_obj o;
} obj;

static int get_i64(const obj *o, const char *n, int64_t *v) { return h5r_attr_i64(&o->o, n, v); }
static int get_u64(const obj *o, const char *n, uint64_t *v) { return h5r_attr_u64(&o->o, n, v); }
static int get_f64(const obj *o, const char *n, double *v) { return h5r_attr_f64(&o->o, n, v); }
static int get_str(const obj *o, const char *n, char *buf, size_t cap) { return h5r_attr_str(&o->o, n, buf, cap); }
static int has_attr(const obj *o, const char *n) { return h5r_find_attr(&o->o, n) != NULL; }

/* Writes one float tensor as float32 or float16. */
static int put_tensor(hid_t grp, const bt_tensor_info *t, const float *data, int dtype) {
  hsize_t dims[3] = {t->shape[0], t->shape[1], t->shape[2]};
  hid_t sp = H5Screate_simple(t->ndim, dims, NULL);
  hid_t ft = dtype == BT_CKPT_F16 ? f16_type() : H5Tcopy(H5T_IEEE_F32LE);
  hid_t d = H5Dcreate2(grp, t->name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int ok = d >= 0;
  if (ok && dtype == BT_CKPT_F16) {
    uint16_t *h = malloc(t->size * sizeof *h);
    ok = h != NULL;
    for (size_t i = 0; ok && i < t->size; i++)
      h[i] = f32_to_f16(data[i]);
    ok = ok && H5Dwrite(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, h) >= 0;
    free(h);
  } else if (ok) {
    ok = H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
  }
  if (d >= 0)
    H5Dclose(d);
  H5Tclose(ft);
  H5Sclose(sp);
  return ok ? 0 : -1;
}

/* Writes n bytes as a 1-D uint8 dataset. */
static int put_bytes(hid_t loc, const char *name, const uint8_t *p, size_t n) {
  hsize_t dims[1] = {n};
  hid_t sp = H5Screate_simple(1, dims, NULL);
  hid_t d = H5Dcreate2(loc, name, H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, p) >= 0;
  if (d >= 0)
    H5Dclose(d);
  H5Sclose(sp);
  return ok ? 0 : -1;
}

/* ---- hostile files: what an object may be before it is read ---- */

/* The object linked as name in group loc, which must be a hard link: soft
 * links could point anywhere in the file and external links into other
 * files (or devices). BT_ERR_NOT_FOUND if there is no such link. */
static bt_error open_link(const obj *loc, const char *name, const char *where, obj *out) {
  uint64_t addr;
  int soft;
  bt_error e = h5r_child(loc->f, &loc->o, name, &addr, &soft);
  if (e == BT_ERR_NOT_FOUND)
    return bt_fail(BT_ERR_NOT_FOUND, "missing %s/%s", where, name);
  if (e == BT_ERR_FORMAT)
    return bt_fail(BT_ERR_FORMAT, "%s/%s is not stored in the file itself (a soft or external link: %s)",
                   where, name, bt_error_detail());
  if (e)
    return e;
  out->f = loc->f;
  return h5r_object(loc->f, addr, &out->o);
}

/* The same, with a missing link an error. */
static bt_error want_link(const obj *loc, const char *name, const char *where, obj *out) {
  bt_error e = open_link(loc, name, where, out);
  if (e != BT_ERR_NOT_FOUND)
    return e;
  return bt_fail(BT_ERR_CORRUPT, "%s", bt_error_detail());
}

/* A dataset must keep its npoints elements of elem bytes inside this file,
 * uncompressed: no external storage (a tensor was read from /dev/zero that
 * way), no filters (a few bytes could inflate to any size, and filters are
 * plugins), and storage that the file really holds. */
static bt_error check_storage(const obj *d, uint64_t npoints, size_t elem, const char *where, const char *name) {
  if (d->o.external)
    return bt_fail(BT_ERR_FORMAT, "%s/%s is stored in external files; refused", where, name);
  if (d->o.filtered)
    return bt_fail(BT_ERR_FORMAT, "%s/%s is filtered (compressed); bt writes tensors uncompressed", where,
                   name);
  uint64_t got;
  bt_error e = h5r_storage_size(d->f, &d->o, &got);
  if (e)
    return e;
  const uint64_t want = npoints * (uint64_t)elem;
  if (d->o.layout == H5R_CHUNKED ? got < want : got != want)
    return bt_fail(BT_ERR_CORRUPT, "%s/%s holds %llu bytes of storage, its shape needs %llu", where, name,
                   (unsigned long long)got, (unsigned long long)want);
  return BT_OK;
}

/* Opens tensor t in grp after checking its link, rank, shape, type and
 * storage; *elem gets its element size (4: float32, 2: float16). */
static bt_error open_tensor(const obj *grp, const bt_tensor_info *t, const char *where, obj *d, size_t *elem) {
  bt_error e = want_link(grp, t->name, where, d);
  if (e)
    return e;
  if (!d->o.is_dataset)
    return bt_fail(BT_ERR_CORRUPT, "%s/%s is not a dataset", where, t->name);
  const int nd = d->o.ndim;
  if (nd != t->ndim)
    return bt_fail(BT_ERR_MISMATCH, "tensor %s/%s has rank %d, expected %d", where, t->name, nd, t->ndim);
  for (int i = 0; i < nd; i++)
    if (d->o.dims[i] != t->shape[i])
      return bt_fail(BT_ERR_MISMATCH, "tensor %s/%s has dim %d = %llu, expected %zu", where, t->name, i,
                     (unsigned long long)d->o.dims[i], t->shape[i]);
  const size_t sz = d->o.type.size;
  if (d->o.type.cls != H5R_FLOAT || (sz != 4 && sz != 2))
    return bt_fail(BT_ERR_FORMAT, "tensor %s/%s is not float32 or float16", where, t->name);
  if ((e = check_storage(d, (uint64_t)t->size, sz, where, t->name)))
    return e;
  *elem = sz;
  return BT_OK;
}

/* Checks every tensor of layout t in grp without reading one, and adds up
 * the bytes they take in the file. */
static bt_error check_tensors(const obj *grp, const bt_tensor_info *t, const char *where, uint64_t *bytes) {
  obj *d = malloc(sizeof *d);
  if (!d)
    return bt_fail(BT_ERR_NOMEM, "checkpoint reader");
  bt_error e = BT_OK;
  for (int i = 0; i < BT_NUM_TENSORS && !e; i++) {
    size_t elem;
    if (!(e = open_tensor(grp, &t[i], where, d, &elem)))
      *bytes += (uint64_t)t[i].size * elem;
  }
  free(d);
  return e;
}

/* Reads one tensor, checking link, rank, shape, type (float32 or float16)
 * and storage first. The file is little-endian, as is every machine bt
 * builds for; the bytes are assembled explicitly all the same. */
static bt_error get_tensor(const obj *grp, const bt_tensor_info *t, float *out, const char *where) {
  obj *d = malloc(sizeof *d);
  if (!d)
    return bt_fail(BT_ERR_NOMEM, "checkpoint reader");
  size_t sz = 0;
  bt_error e = open_tensor(grp, t, where, d, &sz);
  uint8_t *raw = e ? NULL : malloc(t->size * sz);
  if (!e && !raw)
    e = bt_fail(BT_ERR_NOMEM, "reading %s", t->name);
  if (!e && (e = h5r_read(d->f, &d->o, raw, (uint64_t)t->size * sz)))
    e = bt_fail(e, "cannot read tensor %s/%s: %s", where, t->name, bt_error_detail());
  for (size_t i = 0; !e && i < t->size; i++) {
    if (sz == 4) {
      const uint32_t u = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 | (uint32_t)raw[4 * i + 2] << 16 |
                         (uint32_t)raw[4 * i + 3] << 24;
      memcpy(&out[i], &u, sizeof u);
    } else {
      out[i] = f16_to_f32((uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8));
    }
  }
  free(raw);
  free(d);
  return e;
}

/* Opens group name in loc, a hard link. */
static bt_error open_group(const obj *loc, const char *name, const char *where, obj *g) {
  bt_error e = want_link(loc, name, where, g);
  if (e)
    return e;
  if (!g->o.is_group && !g->o.new_links)
    return bt_fail(BT_ERR_CORRUPT, "%s/%s is not a group", where, name);
  return BT_OK;
}

/* ==================================================================== */
/* Save                                                                 */
/* ==================================================================== */

static int write_train(hid_t file, bt_model *m, const bt_train_state *st) {
  hid_t g = H5Gcreate2(file, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0)
    return -1;
  char hex[65];
  bt_sha256_hex(st->data_sha256, hex);
  int r = 0;
  r |= put_i64(g, "step", st->step);
  r |= put_i64(g, "total_steps", st->total_steps);
  r |= put_i64(g, "warmup_steps", st->warmup_steps);
  r |= put_i64(g, "tokens", st->tokens);
  r |= put_i64(g, "batch", st->batch);
  r |= put_i64(g, "seq", st->seq);
  r |= put_i64(g, "threads", st->threads);
  r |= put_i64(g, "ctx_min", st->ctx_min);
  r |= put_i64(g, "ctx_warmup_steps", st->ctx_warmup_steps);
  r |= put_i64(g, "batch_min", st->batch_min); /* format 7 */
  r |= put_i64(g, "batch_warmup_steps", st->batch_warmup_steps);
  r |= put_f64(g, "lr", st->lr);
  r |= put_f64(g, "min_lr", st->min_lr);
  r |= put_f64(g, "weight_decay", st->weight_decay);
  r |= put_f64(g, "beta1", st->beta1);
  r |= put_f64(g, "beta2", st->beta2);
  r |= put_f64(g, "eps", st->eps);
  r |= put_f64(g, "clip", st->clip);
  r |= put_str(g, "schedule", st->schedule == BT_SCHED_WSD ? "wsd" : "cosine");
  r |= put_f64(g, "decay_frac", st->decay_frac);
  r |= put_str(g, "recipe", st->recipe);
  r |= put_str(g, "optimizer", st->optimizer == BT_OPT_MUON ? "muon" : "adamw");
  r |= put_f64(g, "muon_momentum", st->muon_momentum);
  r |= put_str(g, "grad_sum", st->grad_sum == BT_GRAD_SEQUENCES ? "sequences" : "batch");
  r |= put_str(g, "precision", st->precision == BT_PREC_BF16 ? "bf16" : "fp32");
  r |= put_u64(g, "seed", st->seed);
  r |= put_u64(g, "rng0", st->rng[0]);
  r |= put_u64(g, "rng1", st->rng[1]);
  r |= put_f64(g, "val_split", st->val_split);
  r |= put_f64(g, "elapsed_s", st->elapsed_s);
  r |= put_f64(g, "best_val_bpb", st->best_val_bpb);
  if (st->ckpt_every) { /* format 6 */
    r |= put_i64(g, "val_every", st->val_every);
    r |= put_i64(g, "val_bytes", st->val_bytes);
    r |= put_i64(g, "ckpt_every", st->ckpt_every);
    r |= put_i64(g, "log_every", st->log_every);
  }
  r |= put_str(g, "data_name", st->data_name);
  r |= put_u64(g, "data_size", st->data_size);
  r |= put_str(g, "data_sha256", hex);
  const bt_tensor_info *t = bt_model_tensors(m);
  const char *names[2] = {"adam_m", "adam_v"};
  float *mom[2] = {bt_model_adam_m(m), bt_model_adam_v(m)};
  for (int k = 0; k < 2 && !r; k++) {
    hid_t mg = H5Gcreate2(g, names[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    r |= mg < 0 || !mom[k];
    for (int i = 0; i < BT_NUM_TENSORS && !r; i++)
      r |= put_tensor(mg, &t[i], mom[k] + t[i].offset, BT_CKPT_F32);
    if (mg >= 0)
      H5Gclose(mg);
  }
  if (!r) { /* the log, rows x BT_LOG_COLS float64; an empty log has 0 rows */
    hsize_t dims[2] = {st->log_rows, BT_LOG_COLS}, maxd[2] = {H5S_UNLIMITED, BT_LOG_COLS};
    hsize_t chunk[2] = {256, BT_LOG_COLS};
    hid_t sp = H5Screate_simple(2, dims, maxd), pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 2, chunk);
    hid_t d = H5Dcreate2(g, "log", H5T_IEEE_F64LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    r |= d < 0;
    if (!r && st->log_rows)
      r |= H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, st->log) < 0;
    if (d >= 0) {
      r |= put_str(d, "columns", BT_LOG_COLUMN_NAMES);
      H5Dclose(d);
    }
    H5Pclose(pl);
    H5Sclose(sp);
  }
  H5Gclose(g);
  return r ? -1 : 0;
}

/* Writes the user block: magic, file size, SHA-256 of [UB_SIZE, end). */
static bt_error seal_file(int fd, const char *path) {
  struct stat sb;
  if (fstat(fd, &sb) != 0 || sb.st_size < UB_SIZE)
    return bt_fail(BT_ERR_IO, "cannot stat %s", path);
  bt_sha256_ctx c;
  bt_sha256_init(&c);
  static unsigned char buf[1 << 16];
  if (lseek(fd, UB_SIZE, SEEK_SET) < 0)
    return bt_fail(BT_ERR_IO, "seek %s: %s", path, strerror(errno));
  for (;;) {
    ssize_t k = read(fd, buf, sizeof buf);
    if (k < 0)
      return bt_fail(BT_ERR_IO, "read %s: %s", path, strerror(errno));
    if (k == 0)
      break;
    bt_sha256_update(&c, buf, (size_t)k);
  }
  unsigned char ub[UB_SIZE] = {0};
  uint8_t dig[32];
  bt_sha256_final(&c, dig);
  memcpy(ub, UB_MAGIC, 8);
  uint64_t size = (uint64_t)sb.st_size;
  for (int i = 0; i < 8; i++)
    ub[8 + i] = (unsigned char)(size >> (8 * i));
  memcpy(ub + 16, dig, 32);
  snprintf((char *)ub + 64, UB_SIZE - 64,
           "bt checkpoint: HDF5 starts at byte 512; open with h5py.File(path).\n");
  if (pwrite(fd, ub, UB_SIZE, 0) != UB_SIZE)
    return bt_fail(BT_ERR_IO, "write %s: %s", path, strerror(errno));
  if (fsync(fd) != 0)
    return bt_fail(BT_ERR_IO, "fsync %s: %s", path, strerror(errno));
  return BT_OK;
}

bt_error bt_ckpt_save(const char *path, bt_model *m, const bt_train_state *st, int dtype) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  /* A unique name beside path (a killed run's leftover never blocks this
   * one); HDF5 then truncates and writes it. */
  bt_atomic_file af;
  bt_error te = bt_atomic_begin(&af, path);
  if (te)
    return te;
  bt_atomic_umask_mode(&af); /* the mode HDF5 would give a file it created */
  close(af.fd);
  af.fd = -1;
  const char *tmp = af.tmp;
  const bt_config *cfg = bt_model_config(m);
  const bt_tensor_info *t = bt_model_tensors(m);
  float *params = bt_model_params(m);
  if (st && (!bt_model_adam_m(m) || !bt_model_adam_v(m))) {
    unlink(tmp);
    return bt_fail(BT_ERR_NOMEM, "optimizer state");
  }
  size_t tok_len;
  const uint8_t *tok = bt_model_tokenizer(m, &tok_len);
  if ((cfg->vocab > BT_VOCAB) != (tok_len > 0)) {
    unlink(tmp);
    return bt_fail(BT_ERR_ARG, cfg->vocab > BT_VOCAB ? "a model of %d tokens is saved with its tokenizer"
                                                     : "a byte model (V %d) has no tokenizer", cfg->vocab);
  }

  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_userblock(fcpl, UB_SIZE);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  if (f < 0) {
    unlink(tmp);
    return bt_fail(BT_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
  }
  uint8_t dig[32];
  char hex[65];
  bt_model_weights_sha256(m, dig);
  bt_sha256_hex(dig, hex);
  int r = 0;
  r |= put_str(f, "format", FORMAT_NAME);
  r |= put_i64(f, "format_version", FORMAT_VERSION);
  r |= put_str(f, "bt_version", BT_VERSION);
  r |= put_i64(f, "n_layer", cfg->n_layer);
  r |= put_i64(f, "d_model", cfg->d_model);
  r |= put_i64(f, "n_head", cfg->n_head);
  r |= put_i64(f, "ctx", cfg->ctx);
  r |= put_i64(f, "vocab", cfg->vocab);
  r |= put_i64(f, "num_params", (int64_t)bt_model_num_params(m));
  r |= put_str(f, "weights_sha256", hex);
  r |= put_str(f, "dtype", dtype == BT_CKPT_F16 ? "float16" : "float32");
  r |= put_str(f, "architecture",
               "post-LN byte transformer: x=embed*sqrt(C); per layer h=LN1(x+Wo attn(rope q,k; v)), "
               "x=LN2(h+W2 gelu_tanh(W1 h+b1)+b2); logits=Wout x+bout; BOS=0");
  hid_t g = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  r |= g < 0;
  for (int i = 0; i < BT_NUM_TENSORS && !r; i++)
    r |= put_tensor(g, &t[i], params + t[i].offset, dtype);
  if (g >= 0)
    H5Gclose(g);
  if (!r && tok_len)
    r |= put_bytes(f, "tokenizer", tok, tok_len);
  if (!r && st)
    r |= write_train(f, m, st);
  r |= H5Fclose(f) < 0;
  if (r) {
    unlink(tmp);
    return bt_fail(BT_ERR_IO, "cannot write checkpoint %s (disk full?)", tmp);
  }
  int fd = open(tmp, O_RDWR);
  bt_error e = fd < 0 ? bt_fail(BT_ERR_IO, "reopen %s: %s", tmp, strerror(errno)) : seal_file(fd, tmp);
  if (fd >= 0)
    close(fd);
  if (e) {
    bt_atomic_abort(&af);
    return e;
  }
  return bt_atomic_commit(&af, 1); /* seal_file synced the data */
}

/* ==================================================================== */
/* Load                                                                 */
/* ==================================================================== */

/* Reads the whole file into *buf (malloc'd) after checking the user block,
 * then the SHA-256 of the rest, before any parsing. */
static bt_error read_verified(const char *path, uint8_t **buf, uint64_t *file_size) {
  *buf = NULL;
  /* O_NONBLOCK: a FIFO given as a checkpoint must fail, not hang the open. */
  int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return bt_fail(BT_ERR_IO, "cannot open checkpoint %s: %s", path, strerror(errno));
  bt_error e = BT_OK;
  struct stat sb;
  unsigned char ub[UB_SIZE];
  uint8_t *p = NULL;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    e = bt_fail(BT_ERR_IO, "%s is not a regular file", path);
  } else if (sb.st_size < UB_SIZE || pread(fd, ub, UB_SIZE, 0) != UB_SIZE ||
             memcmp(ub, UB_MAGIC, 8) != 0) {
    e = bt_fail(BT_ERR_FORMAT, "%s is not a bt checkpoint", path);
  } else {
    uint64_t size = 0;
    for (int i = 0; i < 8; i++)
      size |= (uint64_t)ub[8 + i] << (8 * i);
    if (size != (uint64_t)sb.st_size) {
      e = bt_fail(BT_ERR_CORRUPT, "checkpoint %s is truncated or damaged (%lld bytes, expected %llu)",
                  path, (long long)sb.st_size, (unsigned long long)size);
    } else if (size > SIZE_MAX || !(p = malloc((size_t)size))) {
      e = bt_fail(BT_ERR_NOMEM, "checkpoint %s: %llu bytes", path, (unsigned long long)size);
    } else if (bt_read_full(fd, p, (size_t)size) != 0) {
      e = bt_fail(BT_ERR_IO, "read %s: %s", path, errno ? strerror(errno) : "the file shrank");
    } else if (memcmp(p, ub, UB_SIZE) != 0) {
      e = bt_fail(BT_ERR_IO, "%s changed while it was read", path);
    } else {
      uint8_t dig[32];
      bt_sha256(p + UB_SIZE, (size_t)size - UB_SIZE, dig);
      if (memcmp(dig, ub + 16, 32) != 0)
        e = bt_fail(BT_ERR_CORRUPT, "checkpoint %s is damaged (checksum mismatch)", path);
      *file_size = size;
    }
  }
  close(fd);
  if (e)
    free(p);
  else
    *buf = p;
  return e;
}

static bt_error read_config(const obj *f, const char *path, bt_config *cfg) {
  char fmt[64] = "";
  int64_t ver = 0, L = 0, C = 0, H = 0, T = 0, V = 0;
  if (get_str(f, "format", fmt, sizeof fmt) || strcmp(fmt, FORMAT_NAME) != 0)
    return bt_fail(BT_ERR_FORMAT, "%s is not a bt checkpoint", path);
  if (get_i64(f, "format_version", &ver) || ver < 1 || ver > FORMAT_VERSION)
    return bt_fail(BT_ERR_FORMAT, "%s has checkpoint format version %lld; this bt reads 1..%d",
                   path, (long long)ver, FORMAT_VERSION);
  if (get_i64(f, "n_layer", &L) || get_i64(f, "d_model", &C) || get_i64(f, "n_head", &H) ||
      get_i64(f, "ctx", &T) || get_i64(f, "vocab", &V))
    return bt_fail(BT_ERR_CORRUPT, "%s lacks its model config", path);
  /* Tokens past the bytes came with format 5. */
  if (V < BT_VOCAB || V > (ver >= 5 ? BT_MAX_VOCAB : BT_VOCAB) || L < 1 || L > 64 || C < 1 || C > 4096 ||
      H < 1 || H > 4096 || T < 1 || T > 65536)
    return bt_fail(BT_ERR_FORMAT, "%s has an unsupported config", path);
  cfg->vocab = (int)V;
  cfg->n_layer = (int)L;
  cfg->d_model = (int)C;
  cfg->n_head = (int)H;
  cfg->ctx = (int)T;
  bt_error e = bt_config_check(cfg);
  return e ? bt_fail(BT_ERR_FORMAT, "%s: %s", path, bt_error_detail()) : BT_OK;
}

/* An open checkpoint: the file in memory and its root group. */
typedef struct {
  uint8_t *buf;
  uint64_t size;
  h5r_file f;
  obj root;
} ckpt_file;

/* Verifies the file's own checksum, then parses its superblock and root. */
static bt_error open_verified(const char *path, ckpt_file *c) {
  memset(c, 0, sizeof *c);
  bt_error e = read_verified(path, &c->buf, &c->size);
  if (!e)
    e = h5r_open(&c->f, c->buf, c->size);
  if (!e) {
    c->root.f = &c->f;
    e = h5r_object(&c->f, c->f.root, &c->root.o);
  }
  if (!e && !c->root.o.is_group)
    e = bt_fail(BT_ERR_CORRUPT, "HDF5: the root is not a group");
  if (e) {
    free(c->buf);
    c->buf = NULL;
    return strncmp(bt_error_detail(), "HDF5: ", 6) == 0 ? bt_fail(e, "%s: %s", path, bt_error_detail()) : e;
  }
  return BT_OK;
}

static void close_file(ckpt_file *c) {
  free(c->buf);
  c->buf = NULL;
}

static bt_error read_info_direct(const char *path, bt_config *cfg, uint8_t weights_sha256[32]) {
  ckpt_file *c = malloc(sizeof *c);
  if (!c)
    return bt_fail(BT_ERR_NOMEM, "checkpoint reader");
  bt_error e = open_verified(path, c);
  if (!e) {
    e = read_config(&c->root, path, cfg);
    char hex[80] = "";
    if (!e && (get_str(&c->root, "weights_sha256", hex, sizeof hex) || bt_sha256_parse_hex(hex, weights_sha256)))
      e = bt_fail(BT_ERR_CORRUPT, "%s: no valid weights_sha256", path);
    close_file(c);
  }
  free(c);
  return e;
}

/* 0 if x is finite and in [lo, hi]. */
static int out_of(double x, double lo, double hi) { return !(isfinite(x) && x >= lo && x <= hi); }

int bt_pow2_divisor(int64_t part, int64_t whole) {
  if (part < 1 || part > whole || whole % part)
    return 0;
  const int64_t r = whole / part;
  return (r & (r - 1)) == 0;
}

/* The batch warmup's stages (batch_min, 2 batch_min, ..., batch), or 0 if
 * there is none. Stage k covers the steps s with floor(s stages / W) = k:
 * [ceil(k W / stages), ceil((k + 1) W / stages)). */
static int warmup_stages(const bt_train_state *st) {
  if (st->batch_min <= 0 || st->batch_min >= st->batch || st->batch_warmup_steps <= 0)
    return 0;
  int stages = 1;
  for (int32_t b = st->batch_min; b < st->batch; b *= 2)
    stages++;
  return stages;
}

int32_t bt_train_batch_at(const bt_train_state *st, int64_t step) {
  const int stages = warmup_stages(st);
  if (!stages || step >= st->batch_warmup_steps)
    return st->batch;
  const int64_t k = step * stages / st->batch_warmup_steps;
  return k >= stages - 1 ? st->batch : st->batch_min << k;
}

static int64_t stage_start(const bt_train_state *st, int stages, int k) {
  return ((int64_t)k * st->batch_warmup_steps + stages - 1) / stages;
}

int64_t bt_train_tokens_before(const bt_train_state *st, int64_t steps) {
  const int stages = warmup_stages(st);
  int64_t tok = 0, s = 0;
  for (int k = 0; k < stages - 1 && s < steps; k++) {
    int64_t end = stage_start(st, stages, k + 1);
    if (end > steps)
      end = steps;
    tok += (end - s) * ((int64_t)st->batch_min << k) * st->seq;
    s = end;
  }
  return tok + (steps - s) * st->batch * st->seq;
}

int64_t bt_train_steps_for(const bt_train_state *st, int64_t tokens) {
  const int stages = warmup_stages(st);
  int64_t s = 0;
  for (int k = 0; k < stages - 1 && tokens > 0; k++) {
    const int64_t end = stage_start(st, stages, k + 1), per = ((int64_t)st->batch_min << k) * st->seq;
    if ((end - s) * per >= tokens)
      return s + (tokens + per - 1) / per;
    tokens -= (end - s) * per;
    s = end;
  }
  const int64_t per = (int64_t)st->batch * st->seq;
  return s + (tokens > 0 ? (tokens + per - 1) / per : 0);
}

int64_t bt_train_decay_start(const bt_train_state *st) {
  if (st->schedule != BT_SCHED_WSD)
    return st->total_steps;
  int64_t d = (int64_t)(st->decay_frac * (double)st->total_steps + 0.5);
  if (d < 1)
    d = 1;
  return d > st->total_steps ? 0 : st->total_steps - d;
}

bt_error bt_train_state_check(const bt_train_state *st, const bt_config *cfg) {
  const int64_t S = BT_TRAIN_MAX_STEPS;
#define BAD(...) return bt_fail(BT_ERR_CORRUPT, "training state: " __VA_ARGS__)
  if (st->step < 0 || st->step > S)
    BAD("step %lld is outside 0..%lld", (long long)st->step, (long long)S);
  if (st->total_steps < 1 || st->total_steps > S)
    BAD("total_steps %lld is outside 1..%lld", (long long)st->total_steps, (long long)S);
  if (st->warmup_steps < 0 || st->warmup_steps > S)
    BAD("warmup_steps %lld is outside 0..%lld", (long long)st->warmup_steps, (long long)S);
  if (st->batch < 1 || st->batch > BT_TRAIN_MAX_BATCH)
    BAD("batch %d is outside 1..%d", st->batch, BT_TRAIN_MAX_BATCH);
  if (st->seq < 1 || st->seq > cfg->ctx)
    BAD("sequence length %d is outside 1..%d (the model's context)", st->seq, cfg->ctx);
  if ((int64_t)st->batch * st->seq > BT_TRAIN_MAX_BATCH_TOKENS)
    BAD("batch %d x %d is more than %lld tokens a step", st->batch, st->seq,
        (long long)BT_TRAIN_MAX_BATCH_TOKENS);
  if (st->tokens < 0 || st->tokens > S * BT_TRAIN_MAX_BATCH_TOKENS)
    BAD("token count %lld is out of range", (long long)st->tokens);
  if (st->threads < 0 || st->threads > 4096)
    BAD("thread count %d is outside 0..4096", st->threads);
  if (st->ctx_warmup_steps < 0 || st->ctx_warmup_steps > S)
    BAD("ctx_warmup_steps %lld is outside 0..%lld", (long long)st->ctx_warmup_steps, (long long)S);
  if (st->ctx_min != 0 && !bt_pow2_divisor(st->ctx_min, st->seq))
    BAD("ctx_min %d does not divide the sequence length %d by a power of two", st->ctx_min, st->seq);
  if (st->batch_warmup_steps < 0 || st->batch_warmup_steps > S)
    BAD("batch_warmup_steps %lld is outside 0..%lld", (long long)st->batch_warmup_steps, (long long)S);
  if (st->batch_min != 0 && !bt_pow2_divisor(st->batch_min, st->batch))
    BAD("batch_min %d does not divide the batch %d by a power of two", st->batch_min, st->batch);
  if (out_of(st->lr, 0, 1e38) || out_of(st->min_lr, 0, 1e38)) /* a float; huge ones just diverge */
    BAD("learning rate %g / %g is not a finite float >= 0", st->lr, st->min_lr);
  if (out_of(st->weight_decay, 0, 100) || out_of(st->clip, 0, 1e9))
    BAD("weight decay %g or clip %g is out of range", st->weight_decay, st->clip);
  if (out_of(st->beta1, 0, 1) || st->beta1 >= 1 || out_of(st->beta2, 0, 1) || st->beta2 >= 1 ||
      out_of(st->eps, 0, 1))
    BAD("AdamW betas %g, %g or eps %g are out of range", st->beta1, st->beta2, st->eps);
  if (out_of(st->val_split, 0, 0.5) || st->val_split >= 0.5)
    BAD("val_split %g is outside [0, 0.5)", st->val_split);
  if (out_of(st->elapsed_s, 0, 1e12))
    BAD("elapsed time %g is out of range", st->elapsed_s);
  if (!isnan(st->best_val_bpb) && out_of(st->best_val_bpb, 0, 1e6))
    BAD("best validation bpb %g is out of range", st->best_val_bpb);
  if (st->schedule != BT_SCHED_COSINE && st->schedule != BT_SCHED_WSD)
    BAD("schedule %d is unknown", st->schedule);
  if (st->schedule == BT_SCHED_WSD ? out_of(st->decay_frac, 0, 1) || st->decay_frac == 0
                                   : out_of(st->decay_frac, 0, 1))
    BAD("decay fraction %g is outside (0, 1]", st->decay_frac);
  if (st->optimizer != BT_OPT_ADAMW && st->optimizer != BT_OPT_MUON)
    BAD("optimizer %d is unknown", st->optimizer);
  if (out_of(st->muon_momentum, 0, 1) || st->muon_momentum >= 1)
    BAD("Muon momentum %g is outside [0, 1)", st->muon_momentum);
  if (st->precision != BT_PREC_FP32 && st->precision != BT_PREC_BF16)
    BAD("precision %d is unknown", st->precision);
  if (memchr(st->recipe, 0, sizeof st->recipe) == NULL)
    BAD("recipe name is not terminated");
  if (st->ckpt_every ? st->ckpt_every < 1 || st->ckpt_every > S || st->log_every < 1 ||
                           st->log_every > S || st->val_every < 0 || st->val_every > S ||
                           st->val_bytes < 1 || st->val_bytes > BT_TRAIN_MAX_VAL_BYTES
                     : st->val_every || st->val_bytes || st->log_every)
    BAD("cadence (validation every %lld steps of %lld bytes, checkpoint every %lld, log every "
        "%lld) is out of range",
        (long long)st->val_every, (long long)st->val_bytes, (long long)st->ckpt_every,
        (long long)st->log_every);
#undef BAD
  return BT_OK;
}

/* A two-valued setting read as a string: *out gets va or vb; anything else
 * is BT_ERR_CORRUPT naming it. */
static bt_error pick(const char *v, const char *a, int32_t va, const char *b, int32_t vb, const char *what,
                     const char *path, int32_t *out) {
  if (strcmp(v, a) && strcmp(v, b))
    return bt_fail(BT_ERR_CORRUPT, "%s: training state: unknown %s '%.15s'", path, what, v);
  *out = strcmp(v, b) == 0 ? vb : va;
  return BT_OK;
}

static bt_error read_train(const obj *f, bt_model *m, bt_train_state *st, const char *path, uint64_t file_size) {
  memset(st, 0, sizeof *st);
  obj *gs = malloc(3 * sizeof *gs); /* /train and its two moment groups */
  if (!gs)
    return bt_fail(BT_ERR_NOMEM, "checkpoint reader");
  obj *g = &gs[0];
  bt_error e = open_link(f, "train", "", g);
  if (e == BT_ERR_NOT_FOUND) {
    free(gs);
    return BT_OK; /* a model without training state */
  }
  if (!e && !g->o.is_group)
    e = bt_fail(BT_ERR_CORRUPT, "/train is not a group");
  if (e) {
    free(gs);
    return e;
  }
  int64_t batch = 0, seq = 0, threads = 0;
  char hex[80] = "";
  int r = 0;
  r |= get_i64(g, "step", &st->step);
  r |= get_i64(g, "total_steps", &st->total_steps);
  r |= get_i64(g, "warmup_steps", &st->warmup_steps);
  r |= get_i64(g, "tokens", &st->tokens);
  r |= get_i64(g, "batch", &batch);
  r |= get_i64(g, "seq", &seq);
  r |= get_i64(g, "threads", &threads);
  r |= get_f64(g, "lr", &st->lr);
  r |= get_f64(g, "min_lr", &st->min_lr);
  r |= get_f64(g, "weight_decay", &st->weight_decay);
  r |= get_f64(g, "beta1", &st->beta1);
  r |= get_f64(g, "beta2", &st->beta2);
  r |= get_f64(g, "eps", &st->eps);
  r |= get_f64(g, "clip", &st->clip);
  r |= get_u64(g, "seed", &st->seed);
  r |= get_u64(g, "rng0", &st->rng[0]);
  r |= get_u64(g, "rng1", &st->rng[1]);
  r |= get_f64(g, "val_split", &st->val_split);
  r |= get_f64(g, "elapsed_s", &st->elapsed_s);
  r |= get_f64(g, "best_val_bpb", &st->best_val_bpb);
  r |= get_str(g, "data_name", st->data_name, sizeof st->data_name);
  r |= get_u64(g, "data_size", &st->data_size);
  r |= get_str(g, "data_sha256", hex, sizeof hex);
  int64_t ctx_min = 0; /* absent in checkpoints from before context warmup */
  if (has_attr(g, "ctx_min")) {
    r |= get_i64(g, "ctx_min", &ctx_min);
    r |= get_i64(g, "ctx_warmup_steps", &st->ctx_warmup_steps);
  }
  int64_t batch_min = 0; /* absent before format 7: no batch warmup */
  if (!r && has_attr(g, "batch_min")) {
    r |= get_i64(g, "batch_min", &batch_min);
    r |= get_i64(g, "batch_warmup_steps", &st->batch_warmup_steps);
  }
  /* Absent in format version 1: a cosine run of recipe v1. */
  char sched[16] = "cosine", opt[16] = "adamw";
  snprintf(st->recipe, sizeof st->recipe, "v1");
  if (has_attr(g, "schedule")) {
    r |= get_str(g, "schedule", sched, sizeof sched);
    r |= get_f64(g, "decay_frac", &st->decay_frac);
    r |= get_str(g, "recipe", st->recipe, sizeof st->recipe);
    r |= get_str(g, "optimizer", opt, sizeof opt);
    r |= get_f64(g, "muon_momentum", &st->muon_momentum);
  }
  if (!r && has_attr(g, "ckpt_every")) { /* absent before format 6 */
    r |= get_i64(g, "val_every", &st->val_every);
    r |= get_i64(g, "val_bytes", &st->val_bytes);
    r |= get_i64(g, "ckpt_every", &st->ckpt_every);
    r |= get_i64(g, "log_every", &st->log_every);
  }
  char gsum[16] = "batch", prec[16] = "fp32"; /* absent before formats 3 and 4 */
  if (!r && has_attr(g, "grad_sum"))
    r |= get_str(g, "grad_sum", gsum, sizeof gsum);
  if (!r && has_attr(g, "precision"))
    r |= get_str(g, "precision", prec, sizeof prec);
  if (!r && ((e = pick(opt, "adamw", BT_OPT_ADAMW, "muon", BT_OPT_MUON, "optimizer", path, &st->optimizer)) ||
             (e = pick(gsum, "batch", BT_GRAD_BATCH, "sequences", BT_GRAD_SEQUENCES, "gradient sum", path,
                       &st->grad_sum)) ||
             (e = pick(prec, "fp32", BT_PREC_FP32, "bf16", BT_PREC_BF16, "precision", path, &st->precision)) ||
             (e = pick(sched, "cosine", BT_SCHED_COSINE, "wsd", BT_SCHED_WSD, "schedule", path, &st->schedule)))) {
    free(gs);
    return e;
  }
  if (r || bt_sha256_parse_hex(hex, st->data_sha256)) {
    free(gs);
    return bt_fail(BT_ERR_CORRUPT, "%s: training state is incomplete", path);
  }
  /* Ranges first, in 64 bits, then the narrowing. */
  if (batch < 1 || batch > BT_TRAIN_MAX_BATCH || seq < 1 || seq > 65536 || threads < 0 || threads > 4096 ||
      ctx_min < 0 || ctx_min > 65536 || batch_min < 0 || batch_min > BT_TRAIN_MAX_BATCH) {
    free(gs);
    return bt_fail(BT_ERR_CORRUPT,
                   "%s: training state: batch %lld, sequence %lld, threads %lld, ctx_min %lld or batch_min %lld "
                   "out of range",
                   path, (long long)batch, (long long)seq, (long long)threads, (long long)ctx_min,
                   (long long)batch_min);
  }
  st->batch = (int32_t)batch;
  st->seq = (int32_t)seq;
  st->threads = (int32_t)threads;
  st->ctx_min = (int32_t)ctx_min;
  st->batch_min = (int32_t)batch_min;
  if ((e = bt_train_state_check(st, bt_model_config(m)))) {
    free(gs);
    return bt_fail(e, "%s: %s", path, bt_error_detail());
  }
  /* The moments: checked whole (links, shapes, storage within the file)
   * before the model allocates them. */
  const bt_tensor_info *t = bt_model_tensors(m);
  const char *names[2] = {"adam_m", "adam_v"};
  obj *mg = gs + 1;
  uint64_t bytes = 0;
  for (int k = 0; k < 2 && !e; k++)
    if (!(e = open_group(g, names[k], "/train", &mg[k])))
      e = check_tensors(&mg[k], t, names[k], &bytes);
  if (!e && bytes > file_size)
    e = bt_fail(BT_ERR_CORRUPT, "%s: the optimizer state claims %llu bytes, more than the file", path,
                (unsigned long long)bytes);
  float *mom[2] = {NULL, NULL};
  if (!e) {
    mom[0] = bt_model_adam_m(m);
    mom[1] = bt_model_adam_v(m);
    if (!mom[0] || !mom[1])
      e = bt_fail(BT_ERR_NOMEM, "optimizer state");
  }
  for (int k = 0; k < 2 && !e; k++)
    for (int i = 0; i < BT_NUM_TENSORS && !e; i++)
      e = get_tensor(&mg[k], &t[i], mom[k] + t[i].offset, names[k]);
  obj *d = mg; /* the moments are read: its slot holds the log */
  bt_error le = e ? BT_OK : open_link(g, "log", "/train", d);
  if (!e && le == BT_OK) {
    const uint64_t rows = d->o.dims[0];
    if (!d->o.is_dataset || d->o.ndim != 2 || d->o.dims[1] != BT_LOG_COLS || rows > (uint64_t)st->step + 1 ||
        rows > (1u << 26) || d->o.type.cls != H5R_FLOAT || d->o.type.size != 8) {
      e = bt_fail(BT_ERR_CORRUPT, "%s: bad /train/log (%llu rows of float64 for %lld steps)", path,
                  (unsigned long long)rows, (long long)st->step);
    } else if (rows && !(e = check_storage(d, rows * BT_LOG_COLS, 8, "/train", "log"))) {
      if (rows * BT_LOG_COLS * 8 > file_size)
        e = bt_fail(BT_ERR_CORRUPT, "%s: /train/log claims more bytes than the file", path);
      else if (!(st->log = malloc(rows * BT_LOG_COLS * sizeof(double))))
        e = bt_fail(BT_ERR_NOMEM, "log");
      else if ((e = h5r_read(d->f, &d->o, st->log, rows * BT_LOG_COLS * sizeof(double))))
        e = bt_fail(e, "%s: cannot read /train/log: %s", path, bt_error_detail());
      else
        st->log_rows = rows;
    }
  } else if (!e && le != BT_ERR_NOT_FOUND) {
    e = le;
  }
  free(gs);
  if (e)
    bt_train_state_clear(st);
  return e;
}

/* /tokenizer of a model of V > 256: a 1-D uint8 dataset holding a .btok
 * image that parses (its own SHA-256 included) to a vocabulary of V. */
static bt_error read_tokenizer(const obj *f, bt_model *m, const char *path) {
  obj *d = malloc(sizeof *d);
  if (!d)
    return bt_fail(BT_ERR_NOMEM, "checkpoint reader");
  const int V = bt_model_config(m)->vocab;
  uint8_t *img = NULL;
  uint64_t n = 0;
  bt_error e = want_link(f, "tokenizer", "", d);
  if (e)
    e = bt_fail(e, "%s: a model of %d tokens without its tokenizer: %s", path, V, bt_error_detail());
  if (!e && (!d->o.is_dataset || d->o.ndim != 1 || d->o.type.cls != H5R_INT || d->o.type.size != 1))
    e = bt_fail(BT_ERR_CORRUPT, "%s: /tokenizer is not a 1-D dataset of bytes", path);
  if (!e) {
    n = d->o.dims[0];
    /* 8 merge bytes a token past the bytes, a header and a digest */
    if (n > 64 + 8 * (uint64_t)V)
      e = bt_fail(BT_ERR_CORRUPT, "%s: /tokenizer claims %llu bytes, too many for %d tokens", path,
                  (unsigned long long)n, V);
  }
  if (!e)
    e = check_storage(d, n, 1, "", "tokenizer");
  if (!e && !(img = malloc(n ? n : 1)))
    e = bt_fail(BT_ERR_NOMEM, "tokenizer");
  if (!e)
    e = h5r_read(d->f, &d->o, img, n);
  bt_bpe *bpe = NULL;
  if (!e && (e = bt_bpe_parse(&bpe, img, n)))
    e = bt_fail(BT_ERR_CORRUPT, "%s: its tokenizer: %s", path, bt_error_detail());
  if (!e && bt_bpe_vocab(bpe) != V)
    e = bt_fail(BT_ERR_CORRUPT, "%s: its tokenizer has %d tokens, the model %d", path, bt_bpe_vocab(bpe), V);
  if (!e)
    e = bt_model_set_tokenizer(m, img, n);
  bt_bpe_free(bpe);
  free(img);
  free(d);
  return e;
}

static bt_error load_direct(const char *path, bt_model **out, bt_train_state *st) {
  *out = NULL;
  if (st)
    memset(st, 0, sizeof *st);
  ckpt_file *c = malloc(sizeof *c);
  obj *g = malloc(sizeof *g);
  if (!c || !g) {
    free(c);
    free(g);
    return bt_fail(BT_ERR_NOMEM, "checkpoint reader");
  }
  bt_error e = open_verified(path, c);
  if (e) {
    free(c);
    free(g);
    return e;
  }
  const obj *f = &c->root;
  const uint64_t file_size = c->size;
  bt_config cfg;
  bt_model *m = NULL;
  e = read_config(f, path, &cfg);
  int64_t np = 0;
  if (!e && (get_i64(f, "num_params", &np) || np < 0 || (uint64_t)np != bt_config_num_params(&cfg)))
    e = bt_fail(BT_ERR_CORRUPT, "%s: parameter count does not match its config", path);
  /* Every tensor is checked against the file before the model, whose size
   * the attributes claim, is allocated: a few forged bytes must not cost
   * gigabytes. */
  bt_tensor_info layout[BT_NUM_TENSORS];
  uint64_t bytes = 0;
  if (!e) {
    bt_param_layout(&cfg, layout);
    if (!(e = open_group(f, "params", "", g)))
      e = check_tensors(g, layout, "params", &bytes);
  }
  if (!e && bytes > file_size)
    e = bt_fail(BT_ERR_CORRUPT, "%s: its tensors claim %llu bytes, more than the file's %llu", path,
                (unsigned long long)bytes, (unsigned long long)file_size);
  if (!e)
    e = bt_model_create(&m, &cfg);
  if (!e) {
    const bt_tensor_info *t = bt_model_tensors(m);
    for (int i = 0; i < BT_NUM_TENSORS && !e; i++)
      e = get_tensor(g, &t[i], bt_model_params(m) + t[i].offset, "params");
  }
  if (!e) {
    char want[80] = "", got[65];
    uint8_t dig[32];
    bt_model_weights_sha256(m, dig);
    bt_sha256_hex(dig, got);
    if (get_str(f, "weights_sha256", want, sizeof want) || strcmp(want, got) != 0)
      e = bt_fail(BT_ERR_CORRUPT, "%s: weights do not match their SHA-256", path);
  }
  if (!e && cfg.vocab > BT_VOCAB)
    e = read_tokenizer(f, m, path);
  if (!e && st)
    e = read_train(f, m, st, path, file_size);
  close_file(c);
  free(c);
  free(g);
  if (e) {
    bt_model_free(m);
    return e;
  }
  *out = m;
  return BT_OK;
}

bt_error bt_ckpt_read_info(const char *path, bt_config *cfg, uint8_t weights_sha256[32]) {
  return read_info_direct(path, cfg, weights_sha256);
}

bt_error bt_ckpt_read_config(const char *path, bt_config *cfg) {
  uint8_t sha[32];
  return bt_ckpt_read_info(path, cfg, sha);
}

bt_error bt_ckpt_load(const char *path, bt_model **out, bt_train_state *st) {
  *out = NULL;
  if (st)
    memset(st, 0, sizeof *st);
  return load_direct(path, out, st);
}
