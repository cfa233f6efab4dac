/* Belady's MIN: evict the resident key referenced furthest in the future; the algorithm, the vtime
 * convention and the libCacheSim notes are in exo_sim/policies/belady.py.
 *
 * An indexed binary heap: the first entry is the key with the largest next access, ties (two keys
 * at NEVER) broken by the smaller key. Each key is a node (key, next access, heap position: 20
 * bytes) in arrays with a free list (grown by exo_grow_nodes, nodes.h); the heap is an array of node
 * indices; a KeyMap maps a key to its node. An update moves the key's one entry (no stale entries,
 * nothing to compact). */
#include "nodes.h"

#define NIL NODE_NIL

typedef struct {
    ExoPolicy base;
    KeyMap index; /* key -> node */
    int64_t *keys, *nexts;
    uint32_t *pos;  /* a node's place in heap; the free list's link for a free node */
    uint32_t *heap; /* node indices, heap-ordered by before() */
    uint32_t cap_nodes, free_head;
    Py_ssize_t n;
} Belady;

static PyTypeObject *Belady_Type;

static int reserve(Belady *b) {
    if (b->free_head != NIL) return 0;
    void **arrs[] = {(void **)&b->keys, (void **)&b->nexts, (void **)&b->pos, (void **)&b->heap};
    const size_t sizes[] = {sizeof(int64_t), sizeof(int64_t), sizeof(uint32_t), sizeof(uint32_t)};
    return exo_grow_nodes(arrs, sizes, 4, 2 /* pos */, &b->cap_nodes, &b->free_head,
                          "belady: more than 2**32 - 2 resident keys");
}

/* node x goes before node y: referenced later, or as late and a smaller key */
static inline int before(const Belady *b, uint32_t x, uint32_t y) {
    int64_t nx = b->nexts[x], ny = b->nexts[y];
    return nx > ny || (nx == ny && b->keys[x] < b->keys[y]);
}

static inline void place(Belady *b, uint32_t at, uint32_t node) {
    b->heap[at] = node;
    b->pos[node] = at;
}

static void sift_up(Belady *b, uint32_t at) {
    uint32_t node = b->heap[at];
    while (at > 0) {
        uint32_t parent = (at - 1) / 2;
        if (!before(b, node, b->heap[parent])) break;
        place(b, at, b->heap[parent]);
        at = parent;
    }
    place(b, at, node);
}

static void sift_down(Belady *b, uint32_t at) {
    uint32_t n = (uint32_t)b->n;
    uint32_t node = b->heap[at];
    for (;;) {
        uint32_t child = 2 * at + 1;
        if (child >= n) break;
        if (child + 1 < n && before(b, b->heap[child + 1], b->heap[child])) child++;
        if (!before(b, b->heap[child], node)) break;
        place(b, at, b->heap[child]);
        at = child;
    }
    place(b, at, node);
}

/* the node now at heap position at may be out of place either way */
static inline void resift(Belady *b, uint32_t at) {
    if (at > 0 && before(b, b->heap[at], b->heap[(at - 1) / 2])) sift_up(b, at);
    else sift_down(b, at);
}

/* Set key's next access, making it resident if it is not (as the Python MIN did on insert and on
 * access alike). */
static int bel_set(PyObject *self, int64_t key, int64_t next) {
    Belady *b = (Belady *)self;
    int64_t *node = keymap_get(&b->index, key);
    if (node != NULL) {
        uint32_t i = (uint32_t)*node;
        b->nexts[i] = next;
        resift(b, b->pos[i]);
        return 0;
    }
    if (reserve(b) < 0) return -1;
    uint32_t i = b->free_head;
    if (keymap_put(&b->index, key, i) < 0) return -1;
    b->free_head = b->pos[i];
    b->keys[i] = key;
    b->nexts[i] = next;
    uint32_t at = (uint32_t)b->n++;
    place(b, at, i);
    sift_up(b, at);
    return 0;
}

static int bel_touch(PyObject *self, int64_t key) { return bel_set(self, key, EXO_NEVER); }

static int bel_remove(PyObject *self, int64_t key) {
    Belady *b = (Belady *)self;
    int64_t *node = keymap_get(&b->index, key);
    if (node == NULL) return exo_key_error(key);
    uint32_t i = (uint32_t)*node;
    keymap_del(&b->index, key);
    uint32_t at = b->pos[i];
    uint32_t last = (uint32_t)--b->n;
    if (at != last) {
        place(b, at, b->heap[last]);
        resift(b, at);
    }
    b->pos[i] = b->free_head;
    b->free_head = i;
    return 0;
}

static int bel_victim(PyObject *self, int64_t *out) {
    Belady *b = (Belady *)self;
    if (b->n == 0) {
        PyErr_SetString(PyExc_KeyError, "victim() of an empty belady policy");
        return -1;
    }
    *out = b->keys[b->heap[0]];
    return bel_remove(self, *out);
}

static int bel_contains(PyObject *self, int64_t key) { return keymap_get(&((Belady *)self)->index, key) != NULL; }

static Py_ssize_t bel_len(PyObject *self) { return ((Belady *)self)->n; }

static int bel_verify(PyObject *self) {
    Belady *b = (Belady *)self;
    if ((Py_ssize_t)b->index.size != b->n) {
        exo_policy_invariant("belady: %zd keys indexed, %zd in the heap", (Py_ssize_t)b->index.size, b->n);
        return -1;
    }
    for (uint32_t at = 0; at < (uint32_t)b->n; at++) {
        uint32_t i = b->heap[at];
        int64_t *node = i < b->cap_nodes ? keymap_get(&b->index, b->keys[i]) : NULL;
        if (node == NULL || (uint32_t)*node != i || b->pos[i] != at) {
            exo_policy_invariant("belady: a resident key has no current heap entry");
            return -1;
        }
        if (at > 0 && before(b, i, b->heap[(at - 1) / 2])) {
            exo_policy_invariant("belady: heap order broken at %u", at);
            return -1;
        }
    }
    return 0;
}

static size_t bel_nbytes(PyObject *self) {
    Belady *b = (Belady *)self;
    return keymap_bytes(&b->index) + (size_t)b->cap_nodes * (2 * sizeof(int64_t) + 2 * sizeof(uint32_t));
}

static const ExoPolicyVT BELADY_VT = {bel_set,    bel_set,      bel_touch, NULL,       NULL,      bel_remove,
                                      bel_victim, bel_contains, bel_len,   bel_verify, bel_nbytes};

static int bel_init(PyObject *self, PyObject *args, PyObject *kwds) {
    if (exo_policy_init_capacity(self, args, kwds) < 0) return -1;
    Belady *b = (Belady *)self;
    b->cap_nodes = 0;
    b->free_head = NIL;
    b->n = 0;
    if (keymap_init(&b->index, 0) < 0) return -1;
    b->base.vt = &BELADY_VT;
    return 0;
}

static void bel_dealloc(PyObject *self) {
    Belady *b = (Belady *)self;
    keymap_free(&b->index);
    PyMem_RawFree(b->keys);
    PyMem_RawFree(b->nexts);
    PyMem_RawFree(b->pos);
    PyMem_RawFree(b->heap);
    exo_policy_dealloc(self);
}

int exo_belady_add_type(PyObject *module) {
    Belady_Type = exo_policy_make_type(module, "exo_sim._core.BeladyPolicy",
                                       "Offline optimal (MIN); needs each access's ``next_access`` from the replay.",
                                       sizeof(Belady), bel_init, bel_dealloc, NULL);
    if (Belady_Type == NULL) return -1;
    return PyObject_SetAttrString((PyObject *)Belady_Type, "needs_future", Py_True);
}
