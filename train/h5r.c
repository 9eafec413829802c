/*
 * h5r.c - see h5r.h. Field layouts follow the HDF5 File Format
 * Specification, version 2 of the document (superblock versions 0 and 1,
 * object header version 1, B-tree version 1, symbol table nodes, local
 * heaps, message versions as noted at each). Every read goes through
 * span(), which checks it lies inside the file.
 */
#include "train/h5r.h"

#include <string.h>

#define UNDEF UINT64_MAX
#define MAX_BLOCKS 64       /* continuation blocks of one object header */
#define MAX_MESSAGES 4096
#define MAX_BTREE_LEVEL 16
#define MAX_ENTRIES 4096    /* entries of one B-tree node or symbol node */

static uint64_t le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* p[off .. off + len) of the file at absolute offset off, or NULL. */
static const uint8_t *at_abs(const h5r_file *f, uint64_t off, uint64_t len) {
  if (off > f->n || len > f->n - off)
    return NULL;
  return f->p + off;
}

/* The same at file address addr (relative to the base). */
static const uint8_t *span(const h5r_file *f, uint64_t addr, uint64_t len) {
  if (addr == UNDEF || addr > UINT64_MAX - f->base)
    return NULL;
  return at_abs(f, f->base + addr, len);
}

#define CORRUPT(...) bt_fail(BT_ERR_CORRUPT, "HDF5: " __VA_ARGS__)
#define UNSUPPORTED(...) bt_fail(BT_ERR_FORMAT, "HDF5: " __VA_ARGS__)

bt_error h5r_open(h5r_file *f, const uint8_t *p, uint64_t n) {
  static const uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  memset(f, 0, sizeof *f);
  f->p = p;
  f->n = n;
  const uint64_t sb = 512; /* bt's user block */
  const uint8_t *s = at_abs(f, sb, 24);
  if (!s || memcmp(s, sig, 8) != 0)
    return UNSUPPORTED("no superblock after the 512-byte user block");
  const int ver = s[8];
  if (ver > 1)
    return UNSUPPORTED("superblock version %d (bt checkpoints have 0)", ver);
  if (s[13] != 8 || s[14] != 8)
    return UNSUPPORTED("%d-byte offsets and %d-byte lengths (bt checkpoints have 8)", s[13], s[14]);
  const uint64_t head = 24 + (ver == 1 ? 4 : 0); /* v1: indexed storage K and reserved */
  s = at_abs(f, sb, head + 32 + 40);
  if (!s)
    return CORRUPT("truncated superblock");
  const uint8_t *a = s + head;
  f->base = le(a, 8);
  const uint64_t eof = le(a + 16, 8);
  if (f->base != sb)
    return UNSUPPORTED("base address %llu (bt checkpoints have %llu)", (unsigned long long)f->base,
                       (unsigned long long)sb);
  if (eof > n) /* libhdf5 counts it from the file's start when there is a user block */
    return CORRUPT("the superblock's end of file (%llu) is past the file's end", (unsigned long long)eof);
  const uint8_t *root = a + 32; /* the root group's symbol table entry */
  f->root = le(root + 8, 8);
  if (!span(f, f->root, 16))
    return CORRUPT("root group object header outside the file");
  return BT_OK;
}

/* ---- messages ---- */

static bt_error parse_dataspace(const uint8_t *p, uint64_t len, int *ndim, uint64_t *dims, uint64_t *npoints) {
  if (len < 4)
    return CORRUPT("short dataspace message");
  const int ver = p[0], nd = p[1], flags = p[2];
  uint64_t off;
  if (ver == 1) {
    off = 8;
  } else if (ver == 2) {
    off = 4;
    if (p[3] == 2) { /* null dataspace: no elements */
      *ndim = 0;
      *npoints = 0;
      return BT_OK;
    }
  } else {
    return UNSUPPORTED("dataspace message version %d", ver);
  }
  if (nd > H5R_MAX_DIMS)
    return UNSUPPORTED("a dataspace of rank %d", nd);
  if (len < off + (uint64_t)nd * 8 * ((flags & 1) ? 2 : 1))
    return CORRUPT("short dataspace message");
  uint64_t np = 1;
  for (int i = 0; i < nd; i++) {
    dims[i] = le(p + off + 8 * (uint64_t)i, 8);
    if (dims[i] && np > UINT64_MAX / dims[i])
      return CORRUPT("dataspace size overflows");
    np *= dims[i];
  }
  *ndim = nd;
  *npoints = np;
  return BT_OK;
}

static bt_error parse_datatype(const uint8_t *p, uint64_t len, h5r_type *t) {
  if (len < 8)
    return CORRUPT("short datatype message");
  const int cls = p[0] & 0x0f, ver = p[0] >> 4;
  const uint32_t bits = (uint32_t)le(p + 1, 3), size = (uint32_t)le(p + 4, 4);
  memset(t, 0, sizeof *t);
  if (ver < 1 || ver > 3)
    return UNSUPPORTED("datatype message version %d", ver);
  t->cls = cls;
  t->size = size;
  if (cls == H5R_INT) {
    if (len < 12 || (bits & 1))
      return UNSUPPORTED("a big-endian or short integer type");
    const uint32_t off = (uint32_t)le(p + 8, 2), prec = (uint32_t)le(p + 10, 2);
    if ((size != 1 && size != 2 && size != 4 && size != 8) || off != 0 || prec != 8 * size)
      return UNSUPPORTED("an integer type of %u bytes (precision %u, offset %u)", size, prec, off);
    t->is_signed = (bits >> 3) & 1;
    return BT_OK;
  }
  if (cls == H5R_FLOAT) {
    if (len < 20 || (bits & 1) || (bits & 0x40))
      return UNSUPPORTED("a big-endian, VAX or short float type");
    const uint32_t sign = (bits >> 8) & 0xff, off = (uint32_t)le(p + 8, 2), prec = (uint32_t)le(p + 10, 2);
    const uint32_t eloc = p[12], esz = p[13], mloc = p[14], msz = p[15], bias = (uint32_t)le(p + 16, 4);
    static const struct { uint32_t size, sign, eloc, esz, msz, bias; } ieee[] = {
        {2, 15, 10, 5, 10, 15}, {4, 31, 23, 8, 23, 127}, {8, 63, 52, 11, 52, 1023}};
    for (size_t i = 0; i < sizeof ieee / sizeof ieee[0]; i++)
      if (size == ieee[i].size && sign == ieee[i].sign && off == 0 && prec == 8 * size && eloc == ieee[i].eloc &&
          esz == ieee[i].esz && mloc == 0 && msz == ieee[i].msz && bias == ieee[i].bias &&
          ((bits >> 4) & 3) == 2) /* implied leading mantissa bit */
        return BT_OK;
    return UNSUPPORTED("a float type that is not IEEE binary16, binary32 or binary64");
  }
  if (cls == H5R_STRING) {
    if (size == 0)
      return UNSUPPORTED("an empty string type");
    return BT_OK;
  }
  return UNSUPPORTED("datatype class %d (bt writes integers, floats and fixed-length strings)", cls);
}

static uint64_t pad8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

static bt_error parse_attribute(const uint8_t *p, uint64_t len, h5r_attr *a) {
  if (len < 8)
    return CORRUPT("short attribute message");
  const int ver = p[0];
  const uint64_t nl = le(p + 2, 2), tl = le(p + 4, 2), sl = le(p + 6, 2);
  uint64_t off = ver == 3 ? 9 : 8;
  if (ver < 1 || ver > 3)
    return UNSUPPORTED("attribute message version %d", ver);
  if (ver >= 2 && p[1] != 0) /* flags: a shared datatype or dataspace (version 1: reserved) */
    return UNSUPPORTED("an attribute with a shared datatype or dataspace");
  const uint64_t nlp = ver == 1 ? pad8(nl) : nl, tlp = ver == 1 ? pad8(tl) : tl, slp = ver == 1 ? pad8(sl) : sl;
  if (nl < 1 || len < off + nlp + tlp + slp)
    return CORRUPT("attribute message sizes do not fit the message");
  a->name = p + off;
  a->name_len = nl - 1; /* the size counts the terminating NUL */
  if (a->name[a->name_len] != 0 || memchr(a->name, 0, a->name_len))
    return CORRUPT("attribute name is not terminated");
  off += nlp;
  bt_error e = parse_datatype(p + off, tl, &a->type);
  if (e)
    return e;
  off += tlp;
  int nd;
  uint64_t dims[H5R_MAX_DIMS];
  if ((e = parse_dataspace(p + off, sl, &nd, dims, &a->npoints)))
    return e;
  off += slp;
  if (a->npoints > (len - off) / (a->type.size ? a->type.size : 1))
    return CORRUPT("attribute data shorter than its type and space");
  a->data = p + off;
  return BT_OK;
}

static bt_error parse_layout(const uint8_t *p, uint64_t len, h5r_obj *o) {
  if (len < 2)
    return CORRUPT("short layout message");
  if (p[0] != 3)
    return UNSUPPORTED("data layout message version %d (bt checkpoints have 3)", p[0]);
  switch (p[1]) {
  case 0:
    if (len < 4 || le(p + 2, 2) > len - 4)
      return CORRUPT("compact layout larger than its message");
    o->layout = H5R_COMPACT;
    o->size = le(p + 2, 2);
    o->compact = p + 4;
    return BT_OK;
  case 1:
    if (len < 18)
      return CORRUPT("short contiguous layout");
    o->layout = H5R_CONTIGUOUS;
    o->addr = le(p + 2, 8);
    o->size = le(p + 10, 8);
    return BT_OK;
  case 2: {
    const int nd = p[2];
    if (nd < 2 || nd > H5R_MAX_DIMS + 1 || len < 11 + 4 * (uint64_t)nd)
      return CORRUPT("bad chunked layout");
    o->layout = H5R_CHUNKED;
    o->chunk_ndim = nd;
    o->addr = le(p + 3, 8);
    for (int i = 0; i < nd; i++)
      if ((o->chunk[i] = (uint32_t)le(p + 11 + 4 * (uint64_t)i, 4)) == 0)
        return CORRUPT("a chunk dimension of 0");
    return BT_OK;
  }
  default:
    return UNSUPPORTED("layout class %d", p[1]);
  }
}

bt_error h5r_object(const h5r_file *f, uint64_t addr, h5r_obj *o) {
  memset(o, 0, sizeof *o);
  const uint8_t *h = span(f, addr, 16);
  if (!h)
    return CORRUPT("object header at %llu is outside the file", (unsigned long long)addr);
  if (!memcmp(h, "OHDR", 4))
    return UNSUPPORTED("object header version 2 (bt checkpoints have 1)");
  if (h[0] != 1)
    return CORRUPT("object header at %llu has version %d", (unsigned long long)addr, h[0]);
  struct { uint64_t addr, len; } blk[MAX_BLOCKS];
  int nb = 1, have_space = 0, have_type = 0, have_layout = 0;
  uint64_t npoints, seen = 0;
  blk[0].addr = addr + 16;
  blk[0].len = le(h + 8, 4);
  bt_error e = BT_OK;
  for (int b = 0; b < nb && !e; b++) {
    const uint8_t *p = span(f, blk[b].addr, blk[b].len);
    if (!p)
      return CORRUPT("object header block outside the file");
    for (uint64_t off = 0; off + 8 <= blk[b].len && !e; ) {
      const int type = (int)le(p + off, 2);
      const uint64_t sz = le(p + off + 2, 2);
      const uint8_t *m = p + off + 8;
      if (sz > blk[b].len - off - 8)
        return CORRUPT("object header message runs past its block");
      if (++seen > MAX_MESSAGES)
        return CORRUPT("too many object header messages");
      switch (type) {
      case 0x0000: break; /* NIL */
      case 0x0001:
        e = parse_dataspace(m, sz, &o->ndim, o->dims, &npoints);
        have_space = 1;
        break;
      case 0x0003:
        e = parse_datatype(m, sz, &o->type);
        have_type = 1;
        break;
      case 0x0008:
        e = parse_layout(m, sz, o);
        have_layout = 1;
        break;
      case 0x000C:
        if (o->nattr >= H5R_MAX_ATTRS)
          return UNSUPPORTED("more than %d attributes on one object", H5R_MAX_ATTRS);
        e = parse_attribute(m, sz, &o->attr[o->nattr]);
        o->nattr++;
        break;
      case 0x0010:
        if (sz < 16)
          return CORRUPT("short continuation message");
        if (nb >= MAX_BLOCKS)
          return CORRUPT("too many object header continuation blocks");
        blk[nb].addr = le(m, 8);
        blk[nb].len = le(m + 8, 8);
        nb++;
        break;
      case 0x0011:
        if (sz < 16)
          return CORRUPT("short symbol table message");
        o->is_group = 1;
        o->btree = le(m, 8);
        o->heap = le(m + 8, 8);
        break;
      case 0x0007: o->external = 1; break;
      case 0x000B: o->filtered = 1; break;
      case 0x0002: case 0x0006: case 0x000A: o->new_links = 1; break;
      case 0x0015: o->dense_attrs = 1; break;
      default: break; /* fill values, times, comments: nothing bt reads */
      }
      off += 8 + sz;
    }
  }
  if (e)
    return e;
  if (o->dense_attrs)
    return UNSUPPORTED("attributes in dense storage (bt checkpoints keep them in the object header)");
  if (have_space && have_type && have_layout) {
    o->is_dataset = 1;
    if (o->ndim == 0) /* scalar */
      o->dims[0] = 1;
  }
  return BT_OK;
}

/* ---- groups ---- */

/* The local heap's data segment. */
static bt_error heap_data(const h5r_file *f, uint64_t heap, const uint8_t **data, uint64_t *len) {
  const uint8_t *h = span(f, heap, 32);
  if (!h || memcmp(h, "HEAP", 4) != 0 || h[4] != 0)
    return CORRUPT("bad local heap");
  *len = le(h + 8, 8);
  *data = span(f, le(h + 24, 8), *len);
  return *data ? BT_OK : CORRUPT("local heap data outside the file");
}

typedef struct {
  const h5r_file *f;
  const uint8_t *names;
  uint64_t names_len;
  const char *want;
  uint64_t addr;
  int found, soft;
  uint64_t visited;
} group_walk;

static bt_error walk_snod(group_walk *w, uint64_t addr) {
  const uint8_t *s = span(w->f, addr, 8);
  if (!s || memcmp(s, "SNOD", 4) != 0 || s[4] != 1)
    return CORRUPT("bad symbol table node");
  const uint64_t n = le(s + 6, 2);
  if (n > MAX_ENTRIES || !(s = span(w->f, addr, 8 + 40 * n)))
    return CORRUPT("symbol table node outside the file");
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *ent = s + 8 + 40 * i;
    const uint64_t name = le(ent, 8);
    if (name >= w->names_len)
      return CORRUPT("link name outside its heap");
    const uint8_t *nm = w->names + name;
    const uint8_t *end = memchr(nm, 0, w->names_len - name);
    if (!end)
      return CORRUPT("link name not terminated");
    if ((size_t)(end - nm) == strlen(w->want) && !memcmp(nm, w->want, (size_t)(end - nm))) {
      if (w->found)
        return CORRUPT("two links named %s", w->want);
      w->found = 1;
      w->addr = le(ent + 8, 8);
      w->soft = le(ent + 16, 4) == 2;
    }
  }
  return BT_OK;
}

/* A version-1 B-tree node of `type` (0: group, 1: chunks) at addr, whose
 * keys of key_size bytes and 8-byte children alternate (key0 child0 ...
 * key_n) after a 24-byte header: *t the whole node, *level, *n children.
 * Levels must descend from max_level; *visited bounds the nodes walked. */
static bt_error btree_node(const h5r_file *f, uint64_t addr, int type, uint64_t key_size, int max_level,
                           uint64_t *visited, const uint8_t **t, int *level, uint64_t *n) {
  const char *what = type ? "chunk" : "group";
  const uint8_t *h = span(f, addr, 24);
  if (!h || memcmp(h, "TREE", 4) != 0 || h[4] != type)
    return CORRUPT("bad %s B-tree node", what);
  *level = h[5];
  *n = le(h + 6, 2);
  if (*level > max_level)
    return CORRUPT("%s B-tree levels do not descend", what);
  if (++*visited > 65536)
    return CORRUPT("%s B-tree too large", what);
  if (*n > MAX_ENTRIES || !(*t = span(f, addr, 24 + (key_size + 8) * *n + key_size)))
    return CORRUPT("%s B-tree node outside the file", what);
  return BT_OK;
}

static bt_error walk_group_tree(group_walk *w, uint64_t addr, int max_level) {
  const uint8_t *t;
  int level;
  uint64_t n;
  bt_error e = btree_node(w->f, addr, 0, 8, max_level, &w->visited, &t, &level, &n);
  if (e)
    return e;
  for (uint64_t i = 0; i < n; i++) {
    const uint64_t child = le(t + 24 + 16 * i + 8, 8);
    e = level == 0 ? walk_snod(w, child) : walk_group_tree(w, child, level - 1);
    if (e)
      return e;
  }
  return BT_OK;
}

bt_error h5r_child(const h5r_file *f, const h5r_obj *g, const char *name, uint64_t *addr, int *soft) {
  *soft = 0;
  if (g->new_links)
    return UNSUPPORTED("a group with link messages (soft or external links, or new-style storage)");
  if (!g->is_group)
    return CORRUPT("not a group");
  group_walk w = {f, NULL, 0, name, 0, 0, 0, 0};
  bt_error e = heap_data(f, g->heap, &w.names, &w.names_len);
  if (!e)
    e = walk_group_tree(&w, g->btree, MAX_BTREE_LEVEL);
  if (e)
    return e;
  if (!w.found)
    return bt_fail(BT_ERR_NOT_FOUND, "no link %s", name);
  if (w.soft) {
    *soft = 1;
    return UNSUPPORTED("%s is a soft link", name);
  }
  *addr = w.addr;
  return BT_OK;
}

/* ---- attributes ---- */

const h5r_attr *h5r_find_attr(const h5r_obj *o, const char *name) {
  const size_t n = strlen(name);
  for (int i = 0; i < o->nattr; i++)
    if (o->attr[i].name_len == n && !memcmp(o->attr[i].name, name, n))
      return &o->attr[i];
  return NULL;
}

/* A scalar integer attribute: *v and *is_signed's sense of it. */
static int attr_int(const h5r_obj *o, const char *name, uint64_t *raw, int *sgn) {
  const h5r_attr *a = h5r_find_attr(o, name);
  if (!a || a->npoints != 1 || a->type.cls != H5R_INT)
    return -1;
  const int bits = 8 * (int)a->type.size;
  uint64_t v = le(a->data, (int)a->type.size);
  *sgn = a->type.is_signed;
  if (a->type.is_signed && bits < 64 && (v >> (bits - 1)) & 1)
    v |= ~(uint64_t)0 << bits; /* sign-extend */
  *raw = v;
  return 0;
}

int h5r_attr_i64(const h5r_obj *o, const char *name, int64_t *v) {
  uint64_t raw;
  int sgn;
  if (attr_int(o, name, &raw, &sgn) || (!sgn && raw > (uint64_t)INT64_MAX))
    return -1;
  memcpy(v, &raw, sizeof raw);
  return 0;
}

int h5r_attr_u64(const h5r_obj *o, const char *name, uint64_t *v) {
  uint64_t raw;
  int sgn;
  if (attr_int(o, name, &raw, &sgn) || (sgn && (raw >> 63)))
    return -1;
  *v = raw;
  return 0;
}

int h5r_attr_f64(const h5r_obj *o, const char *name, double *v) {
  const h5r_attr *a = h5r_find_attr(o, name);
  if (!a || a->npoints != 1 || a->type.cls != H5R_FLOAT || (a->type.size != 4 && a->type.size != 8))
    return -1;
  if (a->type.size == 8) {
    uint64_t u = le(a->data, 8);
    memcpy(v, &u, sizeof u);
  } else {
    uint32_t u = (uint32_t)le(a->data, 4);
    float x;
    memcpy(&x, &u, sizeof x);
    *v = x;
  }
  return 0;
}

int h5r_attr_str(const h5r_obj *o, const char *name, char *buf, size_t cap) {
  const h5r_attr *a = h5r_find_attr(o, name);
  if (!a || a->npoints != 1 || a->type.cls != H5R_STRING || cap == 0)
    return -1;
  size_t n = a->type.size;
  const uint8_t *z = memchr(a->data, 0, n);
  if (z)
    n = (size_t)(z - a->data);
  if (n > cap - 1)
    n = cap - 1;
  memcpy(buf, a->data, n);
  buf[n] = 0;
  return 0;
}

/* ---- dataset storage ---- */

typedef struct {
  const h5r_file *f;
  const h5r_obj *d;
  uint8_t *out;       /* NULL: only count */
  uint64_t bytes;     /* chunk bytes seen */
  uint64_t covered;   /* elements of the extent written */
  uint64_t visited;
  int have_prev;
  uint64_t prev[H5R_MAX_DIMS + 1];
} chunk_walk;

/* Copies the part of a chunk at offsets off[] that lies in the extent. */
static void copy_chunk(chunk_walk *w, const uint8_t *src, const uint64_t *off) {
  const h5r_obj *d = w->d;
  const int nd = d->chunk_ndim - 1;
  const uint64_t el = d->type.size;
  uint64_t n[H5R_MAX_DIMS], idx[H5R_MAX_DIMS] = {0};
  uint64_t total = 1;
  for (int i = 0; i < nd; i++) {
    n[i] = off[i] >= d->dims[i] ? 0 : d->dims[i] - off[i] < d->chunk[i] ? d->dims[i] - off[i] : d->chunk[i];
    total *= n[i];
  }
  if (total == 0)
    return;
  w->covered += total;
  if (!w->out)
    return;
  /* rows along the last dimension, one memcpy each */
  for (;;) {
    uint64_t s = 0, t = 0;
    for (int i = 0; i < nd; i++) {
      s = s * d->chunk[i] + idx[i];
      t = t * d->dims[i] + off[i] + idx[i];
    }
    memcpy(w->out + t * el, src + s * el, n[nd - 1] * el);
    int i = nd - 2;
    for (; i >= 0; i--) {
      if (++idx[i] < n[i])
        break;
      idx[i] = 0;
    }
    if (i < 0)
      break;
  }
}

static bt_error walk_chunk_tree(chunk_walk *w, uint64_t addr, int max_level) {
  const h5r_obj *d = w->d;
  const uint64_t ks = 8 + 8 * (uint64_t)d->chunk_ndim; /* size, filter mask, offsets */
  const uint8_t *t;
  int level;
  uint64_t n;
  bt_error e = btree_node(w->f, addr, 1, ks, max_level, &w->visited, &t, &level, &n);
  if (e)
    return e;
  uint64_t chunk_bytes = d->type.size;
  for (int i = 0; i < d->chunk_ndim - 1; i++)
    chunk_bytes *= d->chunk[i];
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *key = t + 24 + (ks + 8) * i;
    const uint64_t child = le(key + ks, 8);
    if (level > 0) {
      e = walk_chunk_tree(w, child, level - 1);
      if (e)
        return e;
      continue;
    }
    const uint64_t size = le(key, 4), mask = le(key + 4, 4);
    uint64_t off[H5R_MAX_DIMS + 1];
    for (int j = 0; j < d->chunk_ndim; j++)
      off[j] = le(key + 8 + 8 * (uint64_t)j, 8);
    if (mask != 0 || size != chunk_bytes)
      return CORRUPT("a chunk of %llu bytes (filter mask %llu), expected %llu unfiltered",
                     (unsigned long long)size, (unsigned long long)mask, (unsigned long long)chunk_bytes);
    for (int j = 0; j < d->chunk_ndim - 1; j++)
      if (off[j] % d->chunk[j])
        return CORRUPT("a chunk offset that is not a multiple of the chunk");
    /* strictly increasing offsets: no chunk twice */
    if (w->have_prev) {
      int cmp = 0;
      for (int j = 0; j < d->chunk_ndim - 1 && !cmp; j++)
        cmp = off[j] < w->prev[j] ? -1 : off[j] > w->prev[j];
      if (cmp <= 0)
        return CORRUPT("chunks out of order or repeated");
    }
    memcpy(w->prev, off, sizeof off);
    w->have_prev = 1;
    const uint8_t *src = span(w->f, child, size);
    if (!src)
      return CORRUPT("a chunk outside the file");
    w->bytes += size;
    copy_chunk(w, src, off);
  }
  return BT_OK;
}

static uint64_t npoints_of(const h5r_obj *d) {
  uint64_t np = 1;
  for (int i = 0; i < d->ndim; i++)
    np *= d->dims[i]; /* cannot overflow: parse_dataspace checked */
  return np;
}

static bt_error check_chunked(const h5r_obj *d) {
  if (d->chunk_ndim != d->ndim + 1 || d->chunk[d->ndim] != d->type.size)
    return CORRUPT("chunk rank or element size does not match the dataset");
  return BT_OK;
}

bt_error h5r_storage_size(const h5r_file *f, const h5r_obj *d, uint64_t *bytes) {
  *bytes = 0;
  switch (d->layout) {
  case H5R_COMPACT:
    *bytes = d->size;
    return BT_OK;
  case H5R_CONTIGUOUS:
    *bytes = d->addr == UNDEF ? 0 : d->size;
    return BT_OK;
  case H5R_CHUNKED: {
    bt_error e = check_chunked(d);
    if (e || d->addr == UNDEF)
      return e;
    chunk_walk w = {f, d, NULL, 0, 0, 0, 0, {0}};
    if ((e = walk_chunk_tree(&w, d->addr, MAX_BTREE_LEVEL)))
      return e;
    *bytes = w.bytes;
    return BT_OK;
  }
  default:
    return UNSUPPORTED("a dataset with no layout");
  }
}

bt_error h5r_read(const h5r_file *f, const h5r_obj *d, void *out, uint64_t out_bytes) {
  const uint64_t np = npoints_of(d), el = d->type.size;
  if (el == 0 || np > out_bytes / el || np * el != out_bytes)
    return bt_fail(BT_ERR_ARG, "h5r_read: buffer of %llu bytes for %llu elements of %llu",
                   (unsigned long long)out_bytes, (unsigned long long)np, (unsigned long long)el);
  if (d->filtered || d->external)
    return UNSUPPORTED("filtered or external storage");
  const uint8_t *src;
  switch (d->layout) {
  case H5R_COMPACT:
    if (d->size != out_bytes)
      return CORRUPT("compact storage of %llu bytes for %llu", (unsigned long long)d->size,
                     (unsigned long long)out_bytes);
    memcpy(out, d->compact, out_bytes);
    return BT_OK;
  case H5R_CONTIGUOUS:
    if (d->addr == UNDEF || d->size != out_bytes || !(src = span(f, d->addr, out_bytes)))
      return CORRUPT("contiguous storage missing, of the wrong size or outside the file");
    memcpy(out, src, out_bytes);
    return BT_OK;
  case H5R_CHUNKED: {
    bt_error e = check_chunked(d);
    if (e)
      return e;
    if (d->addr == UNDEF)
      return CORRUPT("a chunked dataset with no chunks");
    chunk_walk w = {f, d, out, 0, 0, 0, 0, {0}};
    if ((e = walk_chunk_tree(&w, d->addr, MAX_BTREE_LEVEL)))
      return e;
    if (w.covered != np)
      return CORRUPT("the chunks cover %llu of %llu elements", (unsigned long long)w.covered,
                     (unsigned long long)np);
    return BT_OK;
  }
  default:
    return UNSUPPORTED("a dataset with no layout");
  }
}
