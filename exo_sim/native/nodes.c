/* The node pool of the list-based compiled policies, their common head (ListPolicy) and the growth of
 * node arrays (see nodes.h). */
#include "nodes.h"

int exo_grow_nodes(void **arrs[], const size_t sizes[], int n_arrs, int links_idx, uint32_t *cap,
                   uint32_t *free_head, const char *full) {
    uint64_t want = *cap ? (uint64_t)*cap * 2 : 16;
    if (want >= NODE_NIL) want = NODE_NIL - 1;
    if (want <= *cap) {
        PyErr_SetString(PyExc_MemoryError, full);
        return -1;
    }
    for (int j = 0; j < n_arrs; j++) {
        void *a = PyMem_RawRealloc(*arrs[j], want * sizes[j]);
        if (a == NULL) return PyErr_NoMemory(), -1;
        *arrs[j] = a;
    }
    uint32_t *links = *(uint32_t **)arrs[links_idx];
    for (uint32_t i = *cap; i < (uint32_t)want; i++) links[i] = (i + 1 < (uint32_t)want) ? i + 1 : NODE_NIL;
    *free_head = *cap;
    *cap = (uint32_t)want;
    return 0;
}

void nodepool_init(NodePool *p, int with_bits, const char *full) {
    p->keys = NULL;
    p->prev = p->next = NULL;
    p->bits = NULL;
    p->cap = 0;
    p->free_head = NODE_NIL;
    p->with_bits = with_bits;
    p->full = full;
}

void nodepool_free(NodePool *p) {
    PyMem_RawFree(p->keys);
    PyMem_RawFree(p->prev);
    PyMem_RawFree(p->next);
    PyMem_RawFree(p->bits);
    nodepool_init(p, p->with_bits, p->full);
}

int nodepool_grow(NodePool *p) {
    void **arrs[] = {(void **)&p->keys, (void **)&p->prev, (void **)&p->next, (void **)&p->bits};
    const size_t sizes[] = {sizeof(int64_t), sizeof(uint32_t), sizeof(uint32_t), sizeof(uint8_t)};
    return exo_grow_nodes(arrs, sizes, p->with_bits ? 4 : 3, 2 /* next */, &p->cap, &p->free_head, p->full);
}

size_t nodepool_bytes(const NodePool *p) {
    return (size_t)p->cap * (sizeof(int64_t) + 2 * sizeof(uint32_t) + (p->with_bits ? sizeof(uint8_t) : 0));
}

int nodelist_check(const NodePool *p, const NodeList *l, int (*check)(uint32_t i, void *ctx), void *ctx) {
    Py_ssize_t count = 0;
    uint32_t prev = NODE_NIL;
    for (uint32_t i = l->head; i != NODE_NIL; i = p->next[i]) {
        if (i >= p->cap || p->prev[i] != prev || ++count > l->n) return NODELIST_BROKEN;
        int rc = check(i, ctx);
        if (rc != 0) return rc;
        prev = i;
    }
    return (prev != l->tail || count != l->n) ? NODELIST_MISCOUNT : 0;
}

int listpolicy_init(PyObject *self, PyObject *args, PyObject *kwds, int with_bits, const char *full) {
    if (exo_policy_init_capacity(self, args, kwds) < 0) return -1;
    ListPolicy *lp = (ListPolicy *)self;
    nodepool_init(&lp->pool, with_bits, full);
    return keymap_init(&lp->index, 0);
}

void listpolicy_dealloc(PyObject *self) {
    ListPolicy *lp = (ListPolicy *)self;
    keymap_free(&lp->index);
    nodepool_free(&lp->pool);
    exo_policy_dealloc(self);
}

size_t listpolicy_nbytes(PyObject *self) {
    const ListPolicy *lp = (const ListPolicy *)self;
    return keymap_bytes(&lp->index) + nodepool_bytes(&lp->pool);
}

int listpolicy_contains(PyObject *self, int64_t key) {
    return keymap_get(&((const ListPolicy *)self)->index, key) != NULL;
}
