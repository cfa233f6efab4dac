/* A pool of list nodes for the compiled policies that keep keys in FIFO-ordered lists (S3-FIFO,
 * SIEVE): struct-of-arrays nodes named by uint32 indices (key, prev, next and one byte of the
 * policy's own state: 17 bytes a node), a free list, and doubly linked lists over the pool.
 * No Python object per key; a list is oldest first (head) to newest (tail). */
#ifndef EXO_NODES_H
#define EXO_NODES_H

#include "core.h"

#define NODE_NIL UINT32_MAX

typedef struct {
    int64_t *keys;
    uint32_t *prev, *next;
    uint8_t *bits; /* the policy's per-node state */
    uint32_t cap, free_head;
} NodePool;

typedef struct {
    uint32_t head, tail; /* oldest, newest; NODE_NIL when empty */
    Py_ssize_t n;
} NodeList;

void nodepool_init(NodePool *p);
void nodepool_free(NodePool *p);
/* Take a free node for key (bits 0); -1 with MemoryError set when the pool cannot grow. */
int nodepool_take(NodePool *p, int64_t key, uint32_t *out);
/* Give node i back (it must be unlinked). */
void nodepool_give(NodePool *p, uint32_t i);
/* Bytes the pool holds. */
size_t nodepool_bytes(const NodePool *p);

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

/* Check l's links: every node's prev is its predecessor, the count is n, and check(i, ctx) holds
 * for each node (0 = fine); returns the first failing node's check code, 1 for broken links. */
int nodelist_check(const NodePool *p, const NodeList *l, int (*check)(uint32_t i, void *ctx), void *ctx);

/* Raise KeyError(key); returns -1. */
int exo_key_error(int64_t key);

#endif
