/* A pool of list nodes for the compiled policies that keep keys in ordered lists (LRU/FIFO, ARC,
 * S3-FIFO, SIEVE): struct-of-arrays nodes named by uint32 indices (key, prev, next and, when the
 * policy asks for it, one byte of its own state: 16 or 17 bytes a node), a free list, and doubly
 * linked lists over the pool. No Python object per key; a list is oldest (or LRU) first (head) to
 * newest (tail). exo_grow_nodes, the growth of the pool's arrays, serves the policies with other
 * node layouts too (LFU, Belady). */
#ifndef EXO_NODES_H
#define EXO_NODES_H

#include "core.h"

#define NODE_NIL UINT32_MAX

typedef struct {
    int64_t *keys;
    uint32_t *prev, *next;
    uint8_t *bits; /* the policy's per-node state; NULL in a pool made without it */
    uint32_t cap, free_head;
    int with_bits;
    const char *full; /* the MemoryError message at 2**32 - 2 nodes */
} NodePool;

typedef struct {
    uint32_t head, tail; /* oldest, newest; NODE_NIL when empty */
    Py_ssize_t n;
} NodeList;

/* Grow the parallel arrays *arrs[0..n_arrs) (element sizes sizes[]) from *cap nodes to twice as many
 * (16 at first, 2**32 - 2 at most) and link the new nodes into a free list through the uint32 array
 * *arrs[links_idx], its first in *free_head. -1 with MemoryError set (the message `full` when the
 * pool is at its limit); the arrays grown before a failed one keep their new size, *cap its old one. */
int exo_grow_nodes(void **arrs[], const size_t sizes[], int n_arrs, int links_idx, uint32_t *cap,
                   uint32_t *free_head, const char *full);

/* An empty pool; with_bits: each node carries a byte of state; full: the MemoryError message when
 * the pool cannot name another node (a string that outlives the pool). */
void nodepool_init(NodePool *p, int with_bits, const char *full);
void nodepool_free(NodePool *p);
/* Grow the pool (its free list is empty); -1 with MemoryError set. */
int nodepool_grow(NodePool *p);
/* Bytes the pool holds. */
size_t nodepool_bytes(const NodePool *p);

/* Take a free node for key (its byte, if any, is the caller's to set); -1 with MemoryError set when
 * the pool cannot grow. */
static inline int nodepool_take(NodePool *p, int64_t key, uint32_t *out) {
    if (p->free_head == NODE_NIL && nodepool_grow(p) < 0) return -1;
    uint32_t i = p->free_head;
    p->free_head = p->next[i];
    p->keys[i] = key;
    *out = i;
    return 0;
}

/* Give node i back (it must be unlinked). */
static inline void nodepool_give(NodePool *p, uint32_t i) {
    p->next[i] = p->free_head;
    p->free_head = i;
}

static inline void nodelist_init(NodeList *l) {
    l->head = l->tail = NODE_NIL;
    l->n = 0;
}

/* Append node i at the newest end of l. */
static inline void nodelist_push(NodePool *p, NodeList *l, uint32_t i) {
    p->prev[i] = l->tail;
    p->next[i] = NODE_NIL;
    if (l->tail == NODE_NIL) l->head = i; else p->next[l->tail] = i;
    l->tail = i;
    l->n++;
}

/* Unlink node i from l. */
static inline void nodelist_unlink(NodePool *p, NodeList *l, uint32_t i) {
    uint32_t a = p->prev[i], b = p->next[i];
    if (a == NODE_NIL) l->head = b; else p->next[a] = b;
    if (b == NODE_NIL) l->tail = a; else p->prev[b] = a;
    l->n--;
}

/* The head of every list-based policy's object: the base, one KeyMap from key to node (every key the
 * policy remembers, resident or ghost) and the NodePool of those nodes. */
typedef struct {
    ExoPolicy base;
    KeyMap index;
    NodePool pool;
} ListPolicy;

/* __init__'s common part for a ListPolicy: capacity_blocks (exo_policy_init_capacity), an empty
 * pool (with_bits, full: as nodepool_init) and an empty index; the caller sets its own fields and
 * the vtable last. 0, or -1 with the exception set. */
int listpolicy_init(PyObject *self, PyObject *args, PyObject *kwds, int with_bits, const char *full);
/* tp_dealloc of a ListPolicy whose other fields hold no memory. */
void listpolicy_dealloc(PyObject *self);
/* The vtable's nbytes of a ListPolicy: its index and its pool. */
size_t listpolicy_nbytes(PyObject *self);
/* The vtable's contains of a ListPolicy whose index holds resident keys only. */
int listpolicy_contains(PyObject *self, int64_t key);

/* The node of key, or NODE_NIL. */
static inline uint32_t listpolicy_node(const ListPolicy *lp, int64_t key) {
    const int64_t *v = keymap_get(&lp->index, key);
    return v == NULL ? NODE_NIL : (uint32_t)*v;
}

/* A new node for key, indexed (in no list yet, its byte unset); -1 with the exception set. */
static inline int listpolicy_add(ListPolicy *lp, int64_t key, uint32_t *out) {
    if (nodepool_take(&lp->pool, key, out) < 0) return -1;
    if (keymap_put(&lp->index, key, *out) < 0) {
        nodepool_give(&lp->pool, *out);
        return -1;
    }
    return 0;
}

/* Forget node i (unlinked from its list): out of the index, back to the pool. */
static inline void listpolicy_forget(ListPolicy *lp, uint32_t i) {
    keymap_del(&lp->index, lp->pool.keys[i]);
    nodepool_give(&lp->pool, i);
}

#define NODELIST_BROKEN 1    /* a node's prev is not its predecessor, or more nodes than n */
#define NODELIST_MISCOUNT -1 /* the walk ended at a node other than the tail, or counted fewer than n */

/* Check l's links: walk it from the head, calling check(i, ctx) on each node (0 = fine); returns the
 * first failing node's check code, NODELIST_BROKEN or NODELIST_MISCOUNT, else 0. */
int nodelist_check(const NodePool *p, const NodeList *l, int (*check)(uint32_t i, void *ctx), void *ctx);

#endif
