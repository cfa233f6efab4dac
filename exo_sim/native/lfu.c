/* LFU with FIFO tie-breaking per frequency, as libCacheSim's LFU.c; the algorithm and the
 * libCacheSim notes are in exo_sim/policies/lfu.py.
 *
 * The O(1) frequency-list LFU: the non-empty frequency buckets form a doubly linked list in
 * ascending order of count (so the first bucket is the minimum, always exact), each bucket a doubly
 * linked list of its keys in order of arrival at that count. Keys and buckets are nodes in arrays
 * with uint32 links and free lists (grown by exo_grow_nodes, nodes.h); a KeyMap maps a key to its node.
 * (Not a NodePool: a key node links to its bucket with a uint32, and a bucket is a node too.) */
#include "nodes.h"

#define NIL NODE_NIL

typedef struct {
    ExoPolicy base;
    KeyMap index; /* key -> key node */
    /* key nodes */
    int64_t *keys;
    uint32_t *kprev, *knext, *kbucket;
    uint32_t kcap, kfree;
    /* bucket nodes */
    int64_t *freq;
    uint32_t *bhead, *btail, *bprev, *bnext;
    uint32_t bcap, bfree;
    uint32_t first; /* the bucket of the lowest count, NIL when empty */
    Py_ssize_t n;
} LFU;

static PyTypeObject *LFU_Type;

static int reserve_key(LFU *f) {
    if (f->kfree != NIL) return 0;
    void **arrs[] = {(void **)&f->keys, (void **)&f->kprev, (void **)&f->knext, (void **)&f->kbucket};
    const size_t sizes[] = {sizeof(int64_t), sizeof(uint32_t), sizeof(uint32_t), sizeof(uint32_t)};
    return exo_grow_nodes(arrs, sizes, 4, 2 /* knext */, &f->kcap, &f->kfree, "lfu: more than 2**32 - 2 nodes");
}

static int reserve_bucket(LFU *f) {
    if (f->bfree != NIL) return 0;
    void **arrs[] = {(void **)&f->freq, (void **)&f->bhead, (void **)&f->btail, (void **)&f->bprev,
                     (void **)&f->bnext};
    const size_t sizes[] = {sizeof(int64_t), sizeof(uint32_t), sizeof(uint32_t), sizeof(uint32_t), sizeof(uint32_t)};
    return exo_grow_nodes(arrs, sizes, 5, 4 /* bnext */, &f->bcap, &f->bfree, "lfu: more than 2**32 - 2 nodes");
}

/* a new empty bucket of count c after bucket `after` (NIL: at the front); reserve_bucket first */
static uint32_t new_bucket(LFU *f, int64_t c, uint32_t after) {
    uint32_t b = f->bfree;
    f->bfree = f->bnext[b];
    f->freq[b] = c;
    f->bhead[b] = f->btail[b] = NIL;
    uint32_t nx = after == NIL ? f->first : f->bnext[after];
    f->bprev[b] = after;
    f->bnext[b] = nx;
    if (after == NIL) f->first = b; else f->bnext[after] = b;
    if (nx != NIL) f->bprev[nx] = b;
    return b;
}

static void free_bucket(LFU *f, uint32_t b) {
    uint32_t p = f->bprev[b], nx = f->bnext[b];
    if (p == NIL) f->first = nx; else f->bnext[p] = nx;
    if (nx != NIL) f->bprev[nx] = p;
    f->bnext[b] = f->bfree;
    f->bfree = b;
}

/* unlink key node i from its bucket; the bucket is freed when it empties */
static void unlink_key(LFU *f, uint32_t i) {
    uint32_t b = f->kbucket[i];
    uint32_t p = f->kprev[i], nx = f->knext[i];
    if (p == NIL) f->bhead[b] = nx; else f->knext[p] = nx;
    if (nx == NIL) f->btail[b] = p; else f->kprev[nx] = p;
    if (f->bhead[b] == NIL) free_bucket(f, b);
}

/* append key node i at the tail of bucket b */
static inline void append_key(LFU *f, uint32_t i, uint32_t b) {
    f->kbucket[i] = b;
    f->kprev[i] = f->btail[b];
    f->knext[i] = NIL;
    if (f->btail[b] == NIL) f->bhead[b] = i; else f->knext[f->btail[b]] = i;
    f->btail[b] = i;
}

static int lfu_insert(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) {
    LFU *f = (LFU *)self;
    if (keymap_get(&f->index, key) != NULL) return 0; /* already resident (outside the contract) */
    if (reserve_key(f) < 0 || reserve_bucket(f) < 0) return -1;
    uint32_t i = f->kfree;
    if (keymap_put(&f->index, key, i) < 0) return -1;
    f->kfree = f->knext[i];
    f->keys[i] = key;
    uint32_t b = (f->first != NIL && f->freq[f->first] == 1) ? f->first : new_bucket(f, 1, NIL);
    append_key(f, i, b);
    f->n++;
    return 0;
}

static int lfu_touch(PyObject *self, int64_t key) {
    LFU *f = (LFU *)self;
    int64_t *node = keymap_get(&f->index, key);
    if (node == NULL) return exo_key_error(key);
    uint32_t i = (uint32_t)*node;
    uint32_t b = f->kbucket[i];
    int64_t c = f->freq[b] + 1;
    uint32_t nb = f->bnext[b];
    if (nb == NIL || f->freq[nb] != c) {
        if (f->bhead[b] == i && f->btail[b] == i) {
            /* alone at its count (typical of the hottest keys): relabel its bucket; the order holds */
            f->freq[b] = c;
            return 0;
        }
        if (reserve_bucket(f) < 0) return -1;
        nb = new_bucket(f, c, b);
    }
    unlink_key(f, i); /* may free b, never nb */
    append_key(f, i, nb);
    return 0;
}

static int lfu_access(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) { return lfu_touch(self, key); }

static int lfu_remove(PyObject *self, int64_t key) {
    LFU *f = (LFU *)self;
    int64_t *node = keymap_get(&f->index, key);
    if (node == NULL) return exo_key_error(key);
    uint32_t i = (uint32_t)*node;
    keymap_del(&f->index, key);
    unlink_key(f, i);
    f->knext[i] = f->kfree;
    f->kfree = i;
    f->n--;
    return 0;
}

static int lfu_victim(PyObject *self, int64_t *out) {
    LFU *f = (LFU *)self;
    if (f->first == NIL) {
        PyErr_SetString(PyExc_KeyError, "victim() of an empty lfu policy");
        return -1;
    }
    *out = f->keys[f->bhead[f->first]];
    return lfu_remove(self, *out);
}

static int lfu_contains(PyObject *self, int64_t key) { return keymap_get(&((LFU *)self)->index, key) != NULL; }

static Py_ssize_t lfu_len(PyObject *self) { return ((LFU *)self)->n; }

static int lfu_verify(PyObject *self) {
    LFU *f = (LFU *)self;
    Py_ssize_t count = 0;
    uint32_t bprev = NIL;
    for (uint32_t b = f->first; b != NIL; b = f->bnext[b]) {
        if (f->bprev[b] != bprev || (bprev != NIL && f->freq[bprev] >= f->freq[b]) || f->freq[b] < 1) {
            exo_policy_invariant("lfu: the buckets are not in ascending order of count");
            return -1;
        }
        if (f->bhead[b] == NIL) {
            exo_policy_invariant("lfu: empty bucket %lld kept", (long long)f->freq[b]);
            return -1;
        }
        uint32_t kprev = NIL;
        for (uint32_t i = f->bhead[b]; i != NIL; i = f->knext[i]) {
            int64_t *node = keymap_get(&f->index, f->keys[i]);
            if (f->kprev[i] != kprev || f->kbucket[i] != b || node == NULL || (uint32_t)*node != i || ++count > f->n) {
                exo_policy_invariant("lfu: bucket %lld's links, its keys' counts and the index disagree",
                                     (long long)f->freq[b]);
                return -1;
            }
            kprev = i;
        }
        if (kprev != f->btail[b]) {
            exo_policy_invariant("lfu: bucket %lld's tail is not its last key", (long long)f->freq[b]);
            return -1;
        }
        bprev = b;
    }
    if (count != f->n || (Py_ssize_t)f->index.size != f->n) {
        exo_policy_invariant("lfu: buckets hold %zd keys, counts %zd", count, f->n);
        return -1;
    }
    return 0;
}

static size_t lfu_nbytes(PyObject *self) {
    LFU *f = (LFU *)self;
    return keymap_bytes(&f->index) + (size_t)f->kcap * (sizeof(int64_t) + 3 * sizeof(uint32_t)) +
           (size_t)f->bcap * (sizeof(int64_t) + 4 * sizeof(uint32_t));
}

static const ExoPolicyVT LFU_VT = {lfu_insert, lfu_access, lfu_touch, NULL,       NULL,      lfu_remove,
                                   lfu_victim, lfu_contains, lfu_len, lfu_verify, lfu_nbytes};

static int lfu_init(PyObject *self, PyObject *args, PyObject *kwds) {
    if (exo_policy_init_capacity(self, args, kwds) < 0) return -1;
    LFU *f = (LFU *)self;
    f->kcap = f->bcap = 0;
    f->kfree = f->bfree = f->first = NIL;
    f->n = 0;
    if (keymap_init(&f->index, 0) < 0) return -1;
    f->base.vt = &LFU_VT;
    return 0;
}

static void lfu_dealloc(PyObject *self) {
    LFU *f = (LFU *)self;
    keymap_free(&f->index);
    PyMem_RawFree(f->keys);
    PyMem_RawFree(f->kprev);
    PyMem_RawFree(f->knext);
    PyMem_RawFree(f->kbucket);
    PyMem_RawFree(f->freq);
    PyMem_RawFree(f->bhead);
    PyMem_RawFree(f->btail);
    PyMem_RawFree(f->bprev);
    PyMem_RawFree(f->bnext);
    exo_policy_dealloc(self);
}

int exo_lfu_add_type(PyObject *module) {
    LFU_Type = exo_policy_make_type(module, "exo_sim._core.LFUPolicy",
                                    "Least frequently used with FIFO tie-breaking per frequency, as libCacheSim's LFU.",
                                    sizeof(LFU), lfu_init, lfu_dealloc, NULL);
    return LFU_Type == NULL ? -1 : 0;
}
