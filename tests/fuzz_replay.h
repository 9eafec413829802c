/*
 * fuzz_replay.h - what the fuzz targets' standalone replays share (built
 * with -DBT_FUZZ_STANDALONE): reading a corpus file whole, and running a
 * function on every file of a folder.
 */
#ifndef BT_FUZZ_REPLAY_H
#define BT_FUZZ_REPLAY_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The whole file in a malloc'd buffer (caller frees), or NULL. */
static uint8_t *replay_read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, len = 0;
  uint8_t *p = malloc(cap);
  for (size_t k; p && (k = fread(p + len, 1, cap - len, f)) > 0;) {
    len += k;
    if (len == cap) {
      uint8_t *q = realloc(p, cap *= 2);
      if (!q) free(p);
      p = q;
    }
  }
  fclose(f);
  *n = len;
  return p;
}

/* Calls fn(dir, name) for every file of dir not starting with '.'; -1 if
 * dir is not a folder. */
static int replay_each(const char *dir, void (*fn)(const char *dir, const char *name)) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.') fn(dir, de->d_name);
  closedir(d);
  return 0;
}

#endif
