/*
 * h5r.h - bt's own reader for the part of HDF5 that bt checkpoints use, so
 * that no hostile byte reaches libhdf5 (which is not memory-safe on hostile
 * files: docs/safety.md). Checkpoints are still written with libhdf5.
 *
 * What it reads, all of it bounds-checked against the file in memory:
 *   - superblock version 0 or 1, 8-byte offsets and lengths, after a
 *     512-byte user block;
 *   - version-1 object headers and their continuation blocks;
 *   - symbol-table groups (a version-1 B-tree of symbol nodes, names in a
 *     local heap): hard links, and soft links reported as such;
 *   - datasets: dataspace, datatype (little-endian IEEE float16/32/64,
 *     little-endian integers, fixed-length strings), layout version 3
 *     (compact, contiguous, chunked with a version-1 B-tree);
 *   - attributes (message versions 1 to 3) in the object header.
 * Anything else (new-style groups and links, dense attributes, filters,
 * external storage, big-endian or other types) is BT_ERR_FORMAT, and
 * damage is BT_ERR_CORRUPT. No allocation beyond the caller's buffers.
 */
#ifndef BT_H5R_H
#define BT_H5R_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"

#define H5R_MAX_DIMS 8
#define H5R_MAX_ATTRS 96

typedef struct {
  const uint8_t *p; /* the whole file */
  uint64_t n;
  uint64_t base;    /* absolute offset that file addresses count from */
  uint64_t root;    /* the root group's object header */
} h5r_file;

enum { H5R_INT = 0, H5R_FLOAT = 1, H5R_STRING = 3 };

typedef struct {
  int cls;       /* H5R_INT, H5R_FLOAT or H5R_STRING */
  uint32_t size; /* bytes per element */
  int is_signed; /* H5R_INT */
} h5r_type;

typedef struct {
  const uint8_t *name; /* not terminated */
  size_t name_len;
  h5r_type type;
  uint64_t npoints;
  const uint8_t *data; /* npoints * type.size bytes */
} h5r_attr;

enum { H5R_NONE, H5R_COMPACT, H5R_CONTIGUOUS, H5R_CHUNKED };

typedef struct {
  int is_group, is_dataset;
  uint64_t btree, heap;       /* group: its B-tree and local heap */
  int ndim;                   /* dataset: its dataspace */
  uint64_t dims[H5R_MAX_DIMS];
  h5r_type type;
  int layout;                 /* H5R_* */
  uint64_t addr, size;        /* contiguous (addr == UINT64_MAX: no storage) */
  const uint8_t *compact;     /* compact: size bytes */
  int chunk_ndim;             /* chunked: rank + 1 */
  uint32_t chunk[H5R_MAX_DIMS + 1];
  int filtered, external;     /* storage bt never writes */
  int new_links;              /* a group with link messages (soft or external links) */
  int dense_attrs;            /* attributes outside the header */
  int nattr;
  h5r_attr attr[H5R_MAX_ATTRS];
} h5r_obj;

/* Parses the superblock of the file p[0..n) (not copied: it must outlive
 * the reader's use). */
bt_error h5r_open(h5r_file *f, const uint8_t *p, uint64_t n);

/* Parses the object header at addr. */
bt_error h5r_object(const h5r_file *f, uint64_t addr, h5r_obj *o);

/* The object header of link `name` in group g: BT_OK, BT_ERR_NOT_FOUND
 * (no such link), or BT_ERR_FORMAT for a soft link (*soft = 1). */
bt_error h5r_child(const h5r_file *f, const h5r_obj *g, const char *name, uint64_t *addr, int *soft);

/* The attribute called name, or NULL. */
const h5r_attr *h5r_find_attr(const h5r_obj *o, const char *name);

/* A scalar attribute as an integer (any integer type, range-checked) or a
 * double (float32 or float64). 0, or -1 if absent or of another kind. */
int h5r_attr_i64(const h5r_obj *o, const char *name, int64_t *v);
int h5r_attr_u64(const h5r_obj *o, const char *name, uint64_t *v);
int h5r_attr_f64(const h5r_obj *o, const char *name, double *v);
/* A fixed-length string attribute, up to its first NUL, cut to cap - 1. */
int h5r_attr_str(const h5r_obj *o, const char *name, char *buf, size_t cap);

/* Bytes the dataset's storage holds (chunked: the chunks in its B-tree). */
bt_error h5r_storage_size(const h5r_file *f, const h5r_obj *d, uint64_t *bytes);

/* Copies the dataset's elements, in row-major order, to out (npoints x
 * type.size bytes, as stored: little-endian). Every element must be in the
 * file: a chunked dataset's chunks must cover its extent. */
bt_error h5r_read(const h5r_file *f, const h5r_obj *d, void *out, uint64_t out_bytes);

#endif
