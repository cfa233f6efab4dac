/* The node pool of the list-based compiled policies (see nodes.h). */
#include "nodes.h"

void nodepool_init(NodePool *p) {
    p->keys = NULL;
    p->prev = p->next = NULL;
    p->bits = NULL;
    p->cap = 0;
    p->free_head = NODE_NIL;
}

void nodepool_free(NodePool *p) {
    PyMem_RawFree(p->keys);
    PyMem_RawFree(p->prev);
    PyMem_RawFree(p->next);
    PyMem_RawFree(p->bits);
    nodepool_init(p);
}

static int grow(NodePool *p) {
    uint64_t want = p->cap ? (uint64_t)p->cap * 2 : 16;
    if (want >= NODE_NIL) want = NODE_NIL - 1;
    if (want <= p->cap) {
        PyErr_SetString(PyExc_MemoryError, "policy: more than 2**32 - 2 keys");
        return -1;
    }
    int64_t *k = PyMem_RawRealloc(p->keys, want * sizeof(int64_t));
    if (k == NULL) return PyErr_NoMemory(), -1;
    p->keys = k;
    uint32_t *a = PyMem_RawRealloc(p->prev, want * sizeof(uint32_t));
    if (a == NULL) return PyErr_NoMemory(), -1;
    p->prev = a;
    uint32_t *b = PyMem_RawRealloc(p->next, want * sizeof(uint32_t));
    if (b == NULL) return PyErr_NoMemory(), -1;
    p->next = b;
    uint8_t *s = PyMem_RawRealloc(p->bits, want);
    if (s == NULL) return PyErr_NoMemory(), -1;
    p->bits = s;
    for (uint32_t i = p->cap; i < (uint32_t)want; i++) p->next[i] = (i + 1 < (uint32_t)want) ? i + 1 : NODE_NIL;
    p->free_head = p->cap;
    p->cap = (uint32_t)want;
    return 0;
}

int nodepool_take(NodePool *p, int64_t key, uint32_t *out) {
    if (p->free_head == NODE_NIL && grow(p) < 0) return -1;
    uint32_t i = p->free_head;
    p->free_head = p->next[i];
    p->keys[i] = key;
    p->bits[i] = 0;
    *out = i;
    return 0;
}

void nodepool_give(NodePool *p, uint32_t i) {
    p->next[i] = p->free_head;
    p->free_head = i;
}

size_t nodepool_bytes(const NodePool *p) {
    return (size_t)p->cap * (sizeof(int64_t) + 2 * sizeof(uint32_t) + sizeof(uint8_t));
}

int nodelist_check(const NodePool *p, const NodeList *l, int (*check)(uint32_t i, void *ctx), void *ctx) {
    Py_ssize_t count = 0;
    uint32_t prev = NODE_NIL;
    for (uint32_t i = l->head; i != NODE_NIL; i = p->next[i]) {
        if (i >= p->cap || p->prev[i] != prev || ++count > l->n) return 1;
        int rc = check(i, ctx);
        if (rc != 0) return rc;
        prev = i;
    }
    return (prev != l->tail || count != l->n) ? 1 : 0;
}

int exo_key_error(int64_t key) {
    PyObject *k = PyLong_FromLongLong(key);
    if (k != NULL) {
        PyErr_SetObject(PyExc_KeyError, k);
        Py_DECREF(k);
    }
    return -1;
}
