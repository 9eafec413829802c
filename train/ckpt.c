/* ckpt.c - HDF5 checkpoints: atomic writes, checked reads (see ckpt.h). */
#include "train/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <H5PLpublic.h>
#include <hdf5.h>
#include <math.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/fileio.h"
#include "kernels/hash.h"

#define UB_SIZE 512
#define UB_MAGIC "BTCKPT1\n"
#define FORMAT_NAME "bt-checkpoint"
#define FORMAT_VERSION 3 /* read: 1, 2 and 3 (ckpt.h) */

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

/* Reads a scalar numeric attribute, converted to mem_type. -1 if absent/bad. */
static int attr_get(hid_t obj, const char *name, hid_t mem_type, void *val) {
  if (H5Aexists(obj, name) <= 0)
    return -1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0)
    return -1;
  hid_t sp = H5Aget_space(a), ft = H5Aget_type(a);
  int ok = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 && ft >= 0 &&
           H5Tget_class(ft) != H5T_STRING && H5Aread(a, mem_type, val) >= 0;
  if (ft >= 0)
    H5Tclose(ft);
  if (sp >= 0)
    H5Sclose(sp);
  H5Aclose(a);
  return ok ? 0 : -1;
}
static int get_i64(hid_t o, const char *n, int64_t *v) { return attr_get(o, n, H5T_NATIVE_INT64, v); }
static int get_u64(hid_t o, const char *n, uint64_t *v) { return attr_get(o, n, H5T_NATIVE_UINT64, v); }
static int get_f64(hid_t o, const char *n, double *v) { return attr_get(o, n, H5T_NATIVE_DOUBLE, v); }

/* Reads a fixed-length string attribute into buf (always terminated). */
static int get_str(hid_t obj, const char *name, char *buf, size_t cap) {
  if (H5Aexists(obj, name) <= 0)
    return -1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0)
    return -1;
  hid_t ft = H5Aget_type(a);
  int ok = -1;
  if (ft >= 0 && H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft)) {
    size_t sz = H5Tget_size(ft);
    char *tmp = sz > 0 && sz < (1 << 20) ? calloc(1, sz + 1) : NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, sz);
    if (tmp && H5Aread(a, mt, tmp) >= 0) {
      snprintf(buf, cap, "%s", tmp);
      ok = 0;
    }
    H5Tclose(mt);
    free(tmp);
  }
  if (ft >= 0)
    H5Tclose(ft);
  H5Aclose(a);
  return ok;
}

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

/* ---- hostile files: what an object may be before it is read ---- */

/* name must be a hard link in loc: soft links could point anywhere in the
 * file and external links into other files (or devices). */
static bt_error want_hard_link(hid_t loc, const char *name, const char *where) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
    return bt_fail(BT_ERR_CORRUPT, "missing %s/%s", where, name);
  H5L_info_t li;
  if (H5Lget_info(loc, name, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_HARD)
    return bt_fail(BT_ERR_FORMAT, "%s/%s is not stored in the file itself (a soft or external link)",
                   where, name);
  return BT_OK;
}

/* A dataset must keep its npoints elements of elem bytes inside this file,
 * uncompressed: no external storage (a tensor was read from /dev/zero that
 * way), no virtual layout, no filters (a few bytes could inflate to any
 * size, and filters are plugins), and storage that the file really holds. */
static bt_error check_storage(hid_t d, hsize_t npoints, size_t elem, const char *where, const char *name) {
  hid_t pl = H5Dget_create_plist(d);
  if (pl < 0)
    return bt_fail(BT_ERR_CORRUPT, "%s/%s: cannot read its storage properties", where, name);
  int next = H5Pget_external_count(pl), nfilt = H5Pget_nfilters(pl);
  H5D_layout_t lay = H5Pget_layout(pl);
  H5Pclose(pl);
  if (next != 0)
    return bt_fail(BT_ERR_FORMAT, "%s/%s is stored in external files; refused", where, name);
  if (nfilt != 0)
    return bt_fail(BT_ERR_FORMAT, "%s/%s is filtered (compressed); bt writes tensors uncompressed", where,
                   name);
  if (lay != H5D_CONTIGUOUS && lay != H5D_CHUNKED && lay != H5D_COMPACT)
    return bt_fail(BT_ERR_FORMAT, "%s/%s has an unsupported storage layout", where, name);
  hsize_t want = npoints * (hsize_t)elem, got = H5Dget_storage_size(d);
  if (lay == H5D_CHUNKED ? got < want : got != want)
    return bt_fail(BT_ERR_CORRUPT, "%s/%s holds %llu bytes of storage, its shape needs %llu", where, name,
                   (unsigned long long)got, (unsigned long long)want);
  return BT_OK;
}

/* Opens tensor t in grp after checking its link, rank, shape, type and
 * storage; *elem gets its element size (4: float32, 2: float16). */
static bt_error open_tensor(hid_t grp, const bt_tensor_info *t, const char *where, hid_t *out, size_t *elem) {
  bt_error e = want_hard_link(grp, t->name, where);
  if (e)
    return e;
  hid_t d = H5Dopen2(grp, t->name, H5P_DEFAULT);
  if (d < 0)
    return bt_fail(BT_ERR_CORRUPT, "cannot open tensor %s/%s", where, t->name);
  hid_t sp = H5Dget_space(d), ft = H5Dget_type(d);
  hsize_t dims[8];
  int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  if (nd != t->ndim || H5Sget_simple_extent_dims(sp, dims, NULL) != nd) {
    e = bt_fail(BT_ERR_MISMATCH, "tensor %s/%s has rank %d, expected %d", where, t->name, nd, t->ndim);
  } else {
    for (int i = 0; i < nd && !e; i++)
      if (dims[i] != t->shape[i])
        e = bt_fail(BT_ERR_MISMATCH, "tensor %s/%s has dim %d = %llu, expected %zu", where,
                    t->name, i, (unsigned long long)dims[i], t->shape[i]);
  }
  size_t sz = ft >= 0 ? H5Tget_size(ft) : 0;
  if (!e && (ft < 0 || H5Tget_class(ft) != H5T_FLOAT || (sz != 4 && sz != 2)))
    e = bt_fail(BT_ERR_FORMAT, "tensor %s/%s is not float32 or float16", where, t->name);
  if (!e)
    e = check_storage(d, (hsize_t)t->size, sz, where, t->name);
  if (ft >= 0)
    H5Tclose(ft);
  if (sp >= 0)
    H5Sclose(sp);
  if (e) {
    H5Dclose(d);
    return e;
  }
  *out = d;
  *elem = sz;
  return BT_OK;
}

/* Checks every tensor of layout t in grp without reading one, and adds up
 * the bytes they take in the file. */
static bt_error check_tensors(hid_t grp, const bt_tensor_info *t, const char *where, uint64_t *bytes) {
  for (int i = 0; i < BT_NUM_TENSORS; i++) {
    hid_t d;
    size_t elem;
    bt_error e = open_tensor(grp, &t[i], where, &d, &elem);
    if (e)
      return e;
    *bytes += (uint64_t)t[i].size * elem;
    H5Dclose(d);
  }
  return BT_OK;
}

/* Reads one tensor, checking link, rank, shape, type (float32 or float16)
 * and storage first. */
static bt_error get_tensor(hid_t grp, const bt_tensor_info *t, float *out, const char *where) {
  hid_t d;
  size_t sz;
  bt_error e = open_tensor(grp, t, where, &d, &sz);
  if (e)
    return e;
  if (sz == 4) {
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
      e = bt_fail(BT_ERR_CORRUPT, "cannot read tensor %s/%s", where, t->name);
  } else {
    uint16_t *h = malloc(t->size * sizeof *h);
    hid_t mt = f16_type();
    if (!h)
      e = bt_fail(BT_ERR_NOMEM, "reading %s", t->name);
    else if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, h) < 0)
      e = bt_fail(BT_ERR_CORRUPT, "cannot read tensor %s/%s", where, t->name);
    for (size_t i = 0; !e && i < t->size; i++)
      out[i] = f16_to_f32(h[i]);
    H5Tclose(mt);
    free(h);
  }
  H5Dclose(d);
  return e;
}

/* Opens group name in loc, a hard link. */
static bt_error open_group(hid_t loc, const char *name, const char *where, hid_t *g) {
  bt_error e = want_hard_link(loc, name, where);
  if (e)
    return e;
  H5O_info_t oi;
  if (H5Oget_info_by_name(loc, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP)
    return bt_fail(BT_ERR_CORRUPT, "%s/%s is not a group", where, name);
  *g = H5Gopen2(loc, name, H5P_DEFAULT);
  return *g < 0 ? bt_fail(BT_ERR_CORRUPT, "cannot open %s/%s", where, name) : BT_OK;
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
  r |= put_u64(g, "seed", st->seed);
  r |= put_u64(g, "rng0", st->rng[0]);
  r |= put_u64(g, "rng1", st->rng[1]);
  r |= put_f64(g, "val_split", st->val_split);
  r |= put_f64(g, "elapsed_s", st->elapsed_s);
  r |= put_f64(g, "best_val_bpb", st->best_val_bpb);
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
  mode_t um = umask(0); /* the mode HDF5 would give a file it created */
  umask(um);
  fchmod(af.fd, 0666 & ~um);
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
  r |= put_i64(f, "vocab", BT_VOCAB);
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

/* Checks the user block and the SHA-256 of the rest before HDF5 sees it. */
static bt_error verify_file(const char *path, uint64_t *file_size) {
  /* O_NONBLOCK: a FIFO given as a checkpoint must fail, not hang the open. */
  int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return bt_fail(BT_ERR_IO, "cannot open checkpoint %s: %s", path, strerror(errno));
  bt_error e = BT_OK;
  struct stat sb;
  unsigned char ub[UB_SIZE];
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
    } else {
      bt_sha256_ctx c;
      bt_sha256_init(&c);
      static _Thread_local unsigned char buf[1 << 16];
      off_t off = UB_SIZE;
      for (;;) {
        ssize_t k = pread(fd, buf, sizeof buf, off);
        if (k < 0) {
          e = bt_fail(BT_ERR_IO, "read %s: %s", path, strerror(errno));
          break;
        }
        if (k == 0)
          break;
        bt_sha256_update(&c, buf, (size_t)k);
        off += k;
      }
      uint8_t dig[32];
      bt_sha256_final(&c, dig);
      if (!e && memcmp(dig, ub + 16, 32) != 0)
        e = bt_fail(BT_ERR_CORRUPT, "checkpoint %s is damaged (checksum mismatch)", path);
      *file_size = size;
    }
  }
  close(fd);
  return e;
}

static bt_error read_config(hid_t f, const char *path, bt_config *cfg) {
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
  if (V != BT_VOCAB || L < 1 || L > 64 || C < 1 || C > 4096 || H < 1 || H > 4096 || T < 1 || T > 65536)
    return bt_fail(BT_ERR_FORMAT, "%s has an unsupported config", path);
  cfg->n_layer = (int)L;
  cfg->d_model = (int)C;
  cfg->n_head = (int)H;
  cfg->ctx = (int)T;
  bt_error e = bt_config_check(cfg);
  if (e) {
    char d[512]; /* bt_fail formats into the buffer bt_error_detail returns */
    snprintf(d, sizeof d, "%s", bt_error_detail());
    return bt_fail(BT_ERR_FORMAT, "%s: %s", path, d);
  }
  return BT_OK;
}

/* Verifies the file's own checksum, then opens it with libhdf5. */
static bt_error open_verified(const char *path, hid_t *f, uint64_t *file_size) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  /* A checkpoint is data: never let it load filter plugins. */
  H5PLset_loading_state(0);
  uint64_t size = 0;
  bt_error e = verify_file(path, &size);
  if (e)
    return e;
  if (file_size)
    *file_size = size;
  *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  return *f < 0 ? bt_fail(BT_ERR_CORRUPT, "libhdf5 cannot open %s", path) : BT_OK;
}

static bt_error read_info_direct(const char *path, bt_config *cfg, uint8_t weights_sha256[32]) {
  hid_t f;
  bt_error e = open_verified(path, &f, NULL);
  if (e)
    return e;
  e = read_config(f, path, cfg);
  char hex[80] = "";
  if (!e && (get_str(f, "weights_sha256", hex, sizeof hex) || bt_sha256_parse_hex(hex, weights_sha256)))
    e = bt_fail(BT_ERR_CORRUPT, "%s: no valid weights_sha256", path);
  H5Fclose(f);
  return e;
}

/* 0 if x is finite and in [lo, hi]. */
static int out_of(double x, double lo, double hi) { return !(isfinite(x) && x >= lo && x <= hi); }

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
  if (st->ctx_min != 0) {
    int r = st->ctx_min >= 1 && st->ctx_min <= st->seq ? st->seq / st->ctx_min : 0;
    if (!r || st->seq % st->ctx_min || (r & (r - 1)))
      BAD("ctx_min %d does not divide the sequence length %d by a power of two", st->ctx_min, st->seq);
  }
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
  if (memchr(st->recipe, 0, sizeof st->recipe) == NULL)
    BAD("recipe name is not terminated");
#undef BAD
  return BT_OK;
}

static bt_error read_train(hid_t f, bt_model *m, bt_train_state *st, const char *path, uint64_t file_size) {
  memset(st, 0, sizeof *st);
  if (H5Lexists(f, "train", H5P_DEFAULT) <= 0)
    return BT_OK;
  hid_t g;
  bt_error e = open_group(f, "train", "", &g);
  if (e)
    return e;
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
  if (H5Aexists(g, "ctx_min") > 0) {
    r |= get_i64(g, "ctx_min", &ctx_min);
    r |= get_i64(g, "ctx_warmup_steps", &st->ctx_warmup_steps);
  }
  /* Absent in format version 1: a cosine run of recipe v1. */
  char sched[16] = "cosine", opt[16] = "adamw";
  snprintf(st->recipe, sizeof st->recipe, "v1");
  if (H5Aexists(g, "schedule") > 0) {
    r |= get_str(g, "schedule", sched, sizeof sched);
    r |= get_f64(g, "decay_frac", &st->decay_frac);
    r |= get_str(g, "recipe", st->recipe, sizeof st->recipe);
    r |= get_str(g, "optimizer", opt, sizeof opt);
    r |= get_f64(g, "muon_momentum", &st->muon_momentum);
  }
  if (!r && strcmp(opt, "adamw") && strcmp(opt, "muon")) {
    H5Gclose(g);
    return bt_fail(BT_ERR_CORRUPT, "%s: training state: unknown optimizer '%.15s'", path, opt);
  }
  st->optimizer = strcmp(opt, "muon") == 0 ? BT_OPT_MUON : BT_OPT_ADAMW;
  char gsum[16] = "batch"; /* absent before format 3 */
  if (!r && H5Aexists(g, "grad_sum") > 0)
    r |= get_str(g, "grad_sum", gsum, sizeof gsum);
  if (!r && strcmp(gsum, "batch") && strcmp(gsum, "sequences")) {
    H5Gclose(g);
    return bt_fail(BT_ERR_CORRUPT, "%s: training state: unknown gradient sum '%.15s'", path, gsum);
  }
  st->grad_sum = strcmp(gsum, "sequences") == 0 ? BT_GRAD_SEQUENCES : BT_GRAD_BATCH;
  if (!r && strcmp(sched, "cosine") && strcmp(sched, "wsd")) {
    H5Gclose(g);
    return bt_fail(BT_ERR_CORRUPT, "%s: training state: unknown schedule '%.15s'", path, sched);
  }
  st->schedule = strcmp(sched, "wsd") == 0 ? BT_SCHED_WSD : BT_SCHED_COSINE;
  if (r || bt_sha256_parse_hex(hex, st->data_sha256)) {
    H5Gclose(g);
    return bt_fail(BT_ERR_CORRUPT, "%s: training state is incomplete", path);
  }
  /* Ranges first, in 64 bits, then the narrowing. */
  if (batch < 1 || batch > BT_TRAIN_MAX_BATCH || seq < 1 || seq > 65536 || threads < 0 || threads > 4096 ||
      ctx_min < 0 || ctx_min > 65536) {
    H5Gclose(g);
    return bt_fail(BT_ERR_CORRUPT, "%s: training state: batch %lld, sequence %lld, threads %lld or ctx_min %lld "
                   "out of range", path, (long long)batch, (long long)seq, (long long)threads, (long long)ctx_min);
  }
  st->batch = (int32_t)batch;
  st->seq = (int32_t)seq;
  st->threads = (int32_t)threads;
  st->ctx_min = (int32_t)ctx_min;
  if ((e = bt_train_state_check(st, bt_model_config(m)))) {
    char d[512];
    snprintf(d, sizeof d, "%s", bt_error_detail());
    H5Gclose(g);
    return bt_fail(e, "%s: %s", path, d);
  }
  /* The moments: checked whole (links, shapes, storage within the file)
   * before the model allocates them. */
  const bt_tensor_info *t = bt_model_tensors(m);
  const char *names[2] = {"adam_m", "adam_v"};
  hid_t mg[2] = {-1, -1};
  uint64_t bytes = 0;
  for (int k = 0; k < 2 && !e; k++)
    if (!(e = open_group(g, names[k], "/train", &mg[k])))
      e = check_tensors(mg[k], t, names[k], &bytes);
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
      e = get_tensor(mg[k], &t[i], mom[k] + t[i].offset, names[k]);
  for (int k = 0; k < 2; k++)
    if (mg[k] >= 0)
      H5Gclose(mg[k]);
  if (!e && H5Lexists(g, "log", H5P_DEFAULT) > 0 && !(e = want_hard_link(g, "log", "/train"))) {
    hid_t d = H5Dopen2(g, "log", H5P_DEFAULT);
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[2] = {0, 0};
    if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 2 ||
        H5Sget_simple_extent_dims(sp, dims, NULL) != 2 || dims[1] != BT_LOG_COLS ||
        dims[0] > (hsize_t)st->step + 1 || dims[0] > (1u << 26)) {
      e = bt_fail(BT_ERR_CORRUPT, "%s: bad /train/log (%llu rows for %lld steps)", path,
                  (unsigned long long)dims[0], (long long)st->step);
    } else if (dims[0] && !(e = check_storage(d, dims[0] * BT_LOG_COLS, 8, "/train", "log"))) {
      if (dims[0] * BT_LOG_COLS * 8 > file_size)
        e = bt_fail(BT_ERR_CORRUPT, "%s: /train/log claims more bytes than the file", path);
      else if (!(st->log = malloc(dims[0] * BT_LOG_COLS * sizeof(double))))
        e = bt_fail(BT_ERR_NOMEM, "log");
      else if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, st->log) < 0)
        e = bt_fail(BT_ERR_CORRUPT, "%s: cannot read /train/log", path);
      else
        st->log_rows = dims[0];
    }
    if (sp >= 0)
      H5Sclose(sp);
    if (d >= 0)
      H5Dclose(d);
  }
  H5Gclose(g);
  if (e)
    bt_train_state_clear(st);
  return e;
}

static bt_error load_direct(const char *path, bt_model **out, bt_train_state *st) {
  *out = NULL;
  if (st)
    memset(st, 0, sizeof *st);
  hid_t f, g = -1;
  uint64_t file_size = 0;
  bt_error e = open_verified(path, &f, &file_size);
  if (e)
    return e;
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
    if (!(e = open_group(f, "params", "", &g)))
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
  if (g >= 0)
    H5Gclose(g);
  if (!e) {
    char want[80] = "", got[65];
    uint8_t dig[32];
    bt_model_weights_sha256(m, dig);
    bt_sha256_hex(dig, got);
    if (get_str(f, "weights_sha256", want, sizeof want) || strcmp(want, got) != 0)
      e = bt_fail(BT_ERR_CORRUPT, "%s: weights do not match their SHA-256", path);
  }
  if (!e && st)
    e = read_train(f, m, st, path, file_size);
  H5Fclose(f);
  if (e) {
    bt_model_free(m);
    return e;
  }
  *out = m;
  return BT_OK;
}

/* ==================================================================== */
/* The sandbox: libhdf5 parses in a child process                       */
/* ==================================================================== */

/* libhdf5 1.10 is not memory-safe on hostile files (fuzzing found a
 * use-after-free in H5Aexists on a resealed checkpoint; see docs/safety.md).
 * So the parse runs in a forked child with its stderr on /dev/null, which
 * sends back what it read through a pipe; the parent checks all of it
 * again. A crash, a hang-free abort or garbage from the child is a clean
 * BT_ERR_CORRUPT here, never memory corruption in the caller. */

static int g_sandbox = 1;

void bt_ckpt_set_sandbox(int on) { g_sandbox = on; }

#define SB_MAGIC 0x62747362u /* "btsb" */

/* What the child sends: magic, error, detail, then the payload, then magic. */
typedef struct {
  uint32_t magic;
  int32_t err;
  char detail[512];
  bt_config cfg;
  uint8_t sha[32];
  int32_t has_model, has_state;
  bt_train_state st; /* log: sent after, as log_rows x BT_LOG_COLS doubles */
} sb_head;

enum { SB_INFO, SB_LOAD };

static void child_main(int fd, int what, const char *path, int want_state) {
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) {
    dup2(devnull, 2);
    dup2(devnull, 1);
  }
  sb_head h;
  memset(&h, 0, sizeof h);
  h.magic = SB_MAGIC;
  bt_model *m = NULL;
  bt_error e;
  if (what == SB_INFO) {
    e = read_info_direct(path, &h.cfg, h.sha);
  } else {
    e = load_direct(path, &m, want_state ? &h.st : NULL);
    if (!e) {
      h.cfg = *bt_model_config(m);
      h.has_model = 1;
      h.has_state = want_state && h.st.total_steps != 0;
    }
  }
  h.err = e;
  snprintf(h.detail, sizeof h.detail, "%s", e ? bt_error_detail() : "");
  double *log = h.st.log;
  h.st.log = NULL;
  int bad = bt_write_full(fd, &h, sizeof h);
  if (!bad && h.has_model) {
    size_t n = bt_model_num_params(m);
    bad |= bt_write_full(fd, bt_model_params(m), n * sizeof(float));
    if (h.has_state) {
      bad |= bt_write_full(fd, bt_model_adam_m(m), n * sizeof(float));
      bad |= bt_write_full(fd, bt_model_adam_v(m), n * sizeof(float));
      bad |= bt_write_full(fd, log, h.st.log_rows * BT_LOG_COLS * sizeof(double));
    }
  }
  uint32_t end = SB_MAGIC;
  bad |= bt_write_full(fd, &end, sizeof end);
  _exit(bad ? 3 : 0);
}

/* Runs the parse in a child; fills *h, and for SB_LOAD *out and st. */
static bt_error sandboxed(int what, const char *path, bt_config *cfg, uint8_t sha[32], bt_model **out,
                          bt_train_state *st) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    return bt_fail(BT_ERR_IO, "cannot open checkpoint %s: %s", path, strerror(errno));
  int pfd[2];
  if (pipe(pfd) != 0)
    return bt_fail(BT_ERR_IO, "pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(pfd[0]);
    close(pfd[1]);
    return bt_fail(BT_ERR_IO, "fork: %s", strerror(errno));
  }
  if (pid == 0) {
    close(pfd[0]);
    child_main(pfd[1], what, path, st != NULL);
  }
  close(pfd[1]);
  sb_head h;
  bt_model *m = NULL;
  bt_error e = BT_OK;
  int got = bt_read_full(pfd[0], &h, sizeof h) == 0 && h.magic == SB_MAGIC;
  if (got && h.err) {
    h.detail[sizeof h.detail - 1] = '\0';
    e = bt_fail(h.err > 0 && h.err < BT_ERR__COUNT ? (bt_error)h.err : BT_ERR_CORRUPT, "%s", h.detail);
  } else if (got) {
    /* Trust nothing: the config, the sizes against the file, the state. */
    if (bt_config_check(&h.cfg) != BT_OK)
      got = 0;
    else if (what == SB_LOAD && h.has_model) {
      uint64_t n = bt_config_num_params(&h.cfg);
      if (!(n * 2 <= (uint64_t)sb.st_size) || bt_model_create(&m, &h.cfg) != BT_OK)
        got = 0;
      if (got)
        got = bt_read_full(pfd[0], bt_model_params(m), n * sizeof(float)) == 0;
      if (got && h.has_state) {
        h.st.log = NULL;
        h.st.data_name[sizeof h.st.data_name - 1] = '\0';
        float *am = bt_model_adam_m(m), *av = bt_model_adam_v(m);
        got = st && am && av && bt_train_state_check(&h.st, &h.cfg) == BT_OK &&
              h.st.log_rows <= (size_t)h.st.step + 1 && n * 10 <= (uint64_t)sb.st_size &&
              h.st.log_rows * BT_LOG_COLS * 8 <= (uint64_t)sb.st_size;
        got = got && bt_read_full(pfd[0], am, n * sizeof(float)) == 0 &&
              bt_read_full(pfd[0], av, n * sizeof(float)) == 0;
        if (got && h.st.log_rows) {
          h.st.log = malloc(h.st.log_rows * BT_LOG_COLS * sizeof(double));
          got = h.st.log && bt_read_full(pfd[0], h.st.log, h.st.log_rows * BT_LOG_COLS * sizeof(double)) == 0;
        }
      } else if (got && st) {
        memset(&h.st, 0, sizeof h.st);
      }
    } else if (what == SB_LOAD) {
      got = 0;
    }
    uint32_t end = 0;
    got = got && bt_read_full(pfd[0], &end, sizeof end) == 0 && end == SB_MAGIC;
  }
  close(pfd[0]);
  int status = 0;
  pid_t w;
  while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (w == pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0) && !(got && h.err))
    got = 0;
  if (!got && !e) {
    if (w == pid && WIFSIGNALED(status))
      e = bt_fail(BT_ERR_CORRUPT, "checkpoint %s crashed libhdf5 (signal %d): a damaged or hostile file", path,
                  WTERMSIG(status));
    else
      e = bt_fail(BT_ERR_CORRUPT, "checkpoint %s could not be parsed (libhdf5 failed on it)", path);
  }
  if (e) {
    bt_model_free(m);
    if (got && h.has_state)
      free(h.st.log);
    if (st)
      memset(st, 0, sizeof *st);
    return e;
  }
  if (cfg)
    *cfg = h.cfg;
  if (sha)
    memcpy(sha, h.sha, 32);
  if (out)
    *out = m;
  if (st)
    *st = h.st;
  return BT_OK;
}

bt_error bt_ckpt_read_info(const char *path, bt_config *cfg, uint8_t weights_sha256[32]) {
  if (!g_sandbox)
    return read_info_direct(path, cfg, weights_sha256);
  return sandboxed(SB_INFO, path, cfg, weights_sha256, NULL, NULL);
}

bt_error bt_ckpt_read_config(const char *path, bt_config *cfg) {
  uint8_t sha[32];
  return bt_ckpt_read_info(path, cfg, sha);
}

bt_error bt_ckpt_load(const char *path, bt_model **out, bt_train_state *st) {
  *out = NULL;
  if (st)
    memset(st, 0, sizeof *st);
  if (!g_sandbox)
    return load_direct(path, out, st);
  return sandboxed(SB_LOAD, path, NULL, NULL, out, st);
}
