/*
 * models.c - models by name and by weights hash: the search path
 * (codec.h's bt_model_*), and opening a codec by either.
 *
 * A name means the same wherever a program runs: the search path never
 * holds the current folder. The install's folder is found from the file
 * this code is in (the program, or libbtcodec.so), so a moved prefix and a
 * program linked against the library both find their models.
 */
#define _GNU_SOURCE
#include "coder/codec.h"

#include <dirent.h>
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/hash.h"
#include "train/ckpt.h"

#ifndef BT_LIB_TO_MODELS
#define BT_LIB_TO_MODELS "../share/bt/models" /* CMake sets it from the install dirs */
#endif

static int add_dir(char (*dirs)[PATH_MAX], int n, int cap, const char *d, size_t len) {
  if (n >= cap || len == 0 || len >= PATH_MAX)
    return n;
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%.*s", (int)len, d);
  for (int i = 0; i < n; i++)
    if (strcmp(dirs[i], p) == 0)
      return n;
  memcpy(dirs[n], p, len + 1);
  return n + 1;
}

/* The folder `file` is in, plus each of rel. */
static int add_beside(char (*dirs)[PATH_MAX], int n, int cap, const char *file, const char *const *rel,
                      int nrel) {
  char f[PATH_MAX];
  if (!file || snprintf(f, sizeof f, "%s", file) >= (int)sizeof f)
    return n;
  const char *dir = dirname(f);
  for (int i = 0; i < nrel; i++) {
    char p[PATH_MAX];
    int l = snprintf(p, sizeof p, "%s/%s", dir, rel[i]);
    if (l > 0 && l < (int)sizeof p)
      n = add_dir(dirs, n, cap, p, (size_t)l);
  }
  return n;
}

int bt_model_search_path(char (*dirs)[PATH_MAX], int cap) {
  int n = 0;
  for (const char *p = getenv("BT_MODEL_PATH"); p && *p;) {
    const char *c = strchr(p, ':');
    size_t l = c ? (size_t)(c - p) : strlen(p);
    n = add_dir(dirs, n, cap, p, l);
    p = c ? c + 1 : p + l;
  }
  /* The install this code belongs to: the library's folder (lib/ or
   * lib/<triplet>/) when it is libbtcodec.so, the program's (bin/) when
   * linked statically; a build folder beside the source tree finds
   * checkpoints/. */
  static const char *const from_lib[] = {BT_LIB_TO_MODELS, "../share/bt/models", "../share/bt",
                                         "../checkpoints"};
  Dl_info info;
  if (dladdr((void *)bt_model_search_path, &info) && info.dli_fname && strchr(info.dli_fname, '/')) {
    char real[PATH_MAX];
    if (realpath(info.dli_fname, real))
      n = add_beside(dirs, n, cap, real, from_lib, 4);
  }
  char exe[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (k > 0) {
    exe[k] = '\0';
    n = add_beside(dirs, n, cap, exe, from_lib + 1, 3);
  }
  return n;
}

static int is_readable_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, R_OK) == 0;
}

bt_error bt_model_resolve(const char *name, char *path, size_t cap) {
  if (!name || !*name || !path || cap == 0)
    return bt_fail(BT_ERR_ARG, "no model name");
  if (strchr(name, '/')) {
    if (snprintf(path, cap, "%s", name) >= (int)cap)
      return bt_fail(BT_ERR_ARG, "model path too long");
    return BT_OK;
  }
  char dirs[BT_MODEL_DIRS_MAX][PATH_MAX];
  const int nd = bt_model_search_path(dirs, BT_MODEL_DIRS_MAX);
  for (int i = 0; i < nd; i++) {
    static const char *const form[] = {"%s/bt-%s.h5", "%s/%s.h5", "%s/%s"};
    for (int j = 0; j < 3; j++) {
      char p[PATH_MAX + 80];
      if (snprintf(p, sizeof p, form[j], dirs[i], name) < (int)sizeof p && is_readable_file(p)) {
        if (snprintf(path, cap, "%s", p) >= (int)cap)
          return bt_fail(BT_ERR_ARG, "model path too long");
        return BT_OK;
      }
    }
  }
  return bt_fail(BT_ERR_NOT_FOUND, "no model '%s' on the model search path (%d folders; set BT_MODEL_PATH, "
                 "or give its file)", name, nd);
}

/* info for the checkpoint at path; 0, or -1 if it is not a readable model. */
static int read_info(const char *path, bt_model_info *m) {
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || bt_ckpt_read_info(path, &m->cfg, m->sha256) != BT_OK)
    return -1;
  m->bytes = (uint64_t)sb.st_size;
  m->params = bt_config_num_params(&m->cfg);
  snprintf(m->path, sizeof m->path, "%s", path);
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t l = strlen(base);
  if (l > 3 && strcmp(base + l - 3, ".h5") == 0)
    l -= 3;
  snprintf(m->name, sizeof m->name, "%.*s", (int)l, base);
  return 0;
}

typedef struct {
  bt_model_info *out;
  int cap, n;
} model_set;

/* Adds the model at path unless one with its weights is there already
 * (the first on the search path wins). */
static void add_model(model_set *s, const char *path) {
  bt_model_info m;
  if (read_info(path, &m) != 0)
    return;
  for (int i = 0; i < s->n && i < s->cap; i++)
    if (memcmp(s->out[i].sha256, m.sha256, 32) == 0)
      return;
  if (s->n < s->cap)
    s->out[s->n] = m;
  s->n++;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const bt_model_info *)a)->name, ((const bt_model_info *)b)->name);
}

static int by_string(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds every *.h5 in folder dir, in name order (the same winner whatever
 * readdir's order). */
static void add_folder(model_set *s, const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  enum { MAX_FILES = 256 };
  char *names[MAX_FILES];
  int k = 0;
  struct dirent *de;
  while ((de = readdir(d)) && k < MAX_FILES) {
    size_t l = strlen(de->d_name);
    if (de->d_name[0] != '.' && l > 3 && strcmp(de->d_name + l - 3, ".h5") == 0 && (names[k] = strdup(de->d_name)))
      k++;
  }
  closedir(d);
  qsort(names, (size_t)k, sizeof names[0], by_string);
  for (int j = 0; j < k; j++) {
    char p[PATH_MAX + 300];
    if (snprintf(p, sizeof p, "%s/%s", dir, names[j]) < (int)sizeof p)
      add_model(s, p);
    free(names[j]);
  }
}

/* The models of the search path's folders, or of their retired/ subfolders:
 * the shipped models a newer one replaced, kept so that every file made
 * with them still decodes. They are found by hash only, never by name or in
 * a listing, so a name always means the current model. */
static int list_models(const char *extra, int retired, bt_model_info *out, int cap) {
  model_set s = {out, cap > 0 ? cap : 0, 0};
  if (extra)
    add_model(&s, extra);
  char dirs[BT_MODEL_DIRS_MAX][PATH_MAX];
  const int nd = bt_model_search_path(dirs, BT_MODEL_DIRS_MAX);
  for (int i = 0; i < nd; i++) {
    char sub[PATH_MAX + 16];
    if (!retired)
      add_folder(&s, dirs[i]);
    else if (snprintf(sub, sizeof sub, "%s/retired", dirs[i]) < (int)sizeof sub)
      add_folder(&s, sub);
  }
  const int kept = s.n < s.cap ? s.n : s.cap;
  if (kept > 1)
    qsort(out + (extra ? 1 : 0), (size_t)(kept - (extra ? 1 : 0)), sizeof out[0], by_name);
  return s.n;
}

int bt_model_list(const char *extra, bt_model_info *out, int cap) {
  return list_models(extra, 0, out, cap);
}

bt_error bt_model_find_sha256(const uint8_t sha256[32], const char *extra, bt_model_info *out) {
  enum { MAX_MODELS = 64 };
  bt_model_info *all = malloc(MAX_MODELS * sizeof *all);
  if (!all)
    return bt_fail(BT_ERR_NOMEM, "model list");
  for (int retired = 0; retired < 2; retired++) {
    int n = list_models(retired ? NULL : extra, retired, all, MAX_MODELS);
    if (n > MAX_MODELS)
      n = MAX_MODELS;
    for (int i = 0; i < n; i++)
      if (memcmp(all[i].sha256, sha256, 32) == 0) {
        *out = all[i];
        free(all);
        return BT_OK;
      }
  }
  free(all);
  char hex[65];
  bt_sha256_hex(sha256, hex);
  return bt_fail(BT_ERR_NOT_FOUND, "no model with weights sha256 %s on the model search path", hex);
}

bt_error bt_codec_open_model(bt_codec **out, const char *name) {
  char path[PATH_MAX];
  *out = NULL;
  bt_error e = bt_model_resolve(name, path, sizeof path);
  return e ? e : bt_codec_open(out, path);
}

bt_error bt_codec_open_for(bt_codec **out, const uint8_t *in, size_t len) {
  bt_container_header h;
  uint64_t *off = NULL;
  size_t mlen;
  *out = NULL;
  bt_error e = bt_container_parse_member(in, len, &h, &off, &mlen);
  free(off);
  if (e)
    return e;
  bt_model_info m;
  e = bt_model_find_sha256(h.ckpt_sha256, NULL, &m);
  if (e) {
    char hex[65];
    bt_sha256_hex(h.ckpt_sha256, hex);
    return bt_fail(BT_ERR_MISMATCH, "made with model %s (weights sha256 %s), which is not on the model "
                   "search path (set BT_MODEL_PATH, or give its file)", h.model_name[0] ? h.model_name : "?",
                   hex);
  }
  return bt_codec_open(out, m.path);
}
