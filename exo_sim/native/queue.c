/* The queue policies: resident keys form one queue, inserted at the tail, evicted from the head.
 *
 * LRU: a hit (and, under prefix reuse, a release) moves the key to the tail, so the head is the least
 * recently used key; libCacheSim's LRU.c exactly (insert at head, evict tail, hit moves to head).
 * FIFO: a hit changes nothing (touch is None, no release hook); libCacheSim's FIFO.c exactly.
 *
 * The queue is a doubly linked list of nodes in one array (key, prev, next: 16 bytes a node), with a
 * KeyMap from key to node and a free list of nodes. */
#include "core.h"

#define NIL UINT32_MAX

typedef struct {
    ExoPolicy base;
    KeyMap index; /* key -> node */
    int64_t *keys;
    uint32_t *prev, *next;
    uint32_t cap_nodes, head, tail, free_head;
    Py_ssize_t n;
} QueuePolicy;

static PyTypeObject *LRU_Type, *FIFO_Type;

static int reserve(QueuePolicy *q) {
    if (q->free_head != NIL) return 0;
    uint64_t want = q->cap_nodes ? (uint64_t)q->cap_nodes * 2 : 16;
    if (want >= NIL) want = NIL - 1;
    if (want <= q->cap_nodes) {
        PyErr_SetString(PyExc_MemoryError, "queue policy: more than 2**32 - 2 resident keys");
        return -1;
    }
    int64_t *k = PyMem_RawRealloc(q->keys, want * sizeof(int64_t));
    if (k == NULL) return PyErr_NoMemory(), -1;
    q->keys = k;
    uint32_t *p = PyMem_RawRealloc(q->prev, want * sizeof(uint32_t));
    if (p == NULL) return PyErr_NoMemory(), -1;
    q->prev = p;
    uint32_t *nx = PyMem_RawRealloc(q->next, want * sizeof(uint32_t));
    if (nx == NULL) return PyErr_NoMemory(), -1;
    q->next = nx;
    for (uint32_t i = q->cap_nodes; i < (uint32_t)want; i++) q->next[i] = (i + 1 < (uint32_t)want) ? i + 1 : NIL;
    q->free_head = q->cap_nodes;
    q->cap_nodes = (uint32_t)want;
    return 0;
}

static inline void unlink_node(QueuePolicy *q, uint32_t i) {
    uint32_t p = q->prev[i], n = q->next[i];
    if (p == NIL) q->head = n; else q->next[p] = n;
    if (n == NIL) q->tail = p; else q->prev[n] = p;
}

static inline void append_node(QueuePolicy *q, uint32_t i) {
    q->prev[i] = q->tail;
    q->next[i] = NIL;
    if (q->tail == NIL) q->head = i; else q->next[q->tail] = i;
    q->tail = i;
}

static int q_insert(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) {
    QueuePolicy *q = (QueuePolicy *)self;
    if (keymap_get(&q->index, key) != NULL) {
        /* as an OrderedDict assignment: an existing key keeps its place */
        return 0;
    }
    if (reserve(q) < 0) return -1;
    uint32_t i = q->free_head;
    if (keymap_put(&q->index, key, i) < 0) return -1;
    q->free_head = q->next[i];
    q->keys[i] = key;
    append_node(q, i);
    q->n++;
    return 0;
}

static int key_error(int64_t key) {
    PyObject *k = PyLong_FromLongLong(key);
    if (k != NULL) {
        PyErr_SetObject(PyExc_KeyError, k);
        Py_DECREF(k);
    }
    return -1;
}

static int lru_touch(PyObject *self, int64_t key) {
    QueuePolicy *q = (QueuePolicy *)self;
    int64_t *node = keymap_get(&q->index, key);
    if (node == NULL) return key_error(key);
    uint32_t i = (uint32_t)*node;
    if (q->tail != i) {
        unlink_node(q, i);
        append_node(q, i);
    }
    return 0;
}

static int lru_access(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) { return lru_touch(self, key); }

static int fifo_access(PyObject *Py_UNUSED(self), int64_t Py_UNUSED(key), int64_t Py_UNUSED(next)) { return 0; }

static int q_remove(PyObject *self, int64_t key) {
    QueuePolicy *q = (QueuePolicy *)self;
    int64_t *node = keymap_get(&q->index, key);
    if (node == NULL) return key_error(key);
    uint32_t i = (uint32_t)*node;
    keymap_del(&q->index, key);
    unlink_node(q, i);
    q->next[i] = q->free_head;
    q->free_head = i;
    q->n--;
    return 0;
}

static int q_victim(PyObject *self, int64_t *out) {
    QueuePolicy *q = (QueuePolicy *)self;
    if (q->head == NIL) {
        PyErr_SetString(PyExc_KeyError, "victim(): the queue is empty");
        return -1;
    }
    *out = q->keys[q->head];
    return q_remove(self, *out);
}

static int q_contains(PyObject *self, int64_t key) { return keymap_get(&((QueuePolicy *)self)->index, key) != NULL; }

static Py_ssize_t q_len(PyObject *self) { return ((QueuePolicy *)self)->n; }

static int q_verify(PyObject *self) {
    QueuePolicy *q = (QueuePolicy *)self;
    Py_ssize_t count = 0;
    uint32_t prev = NIL;
    for (uint32_t i = q->head; i != NIL; i = q->next[i]) {
        int64_t *node = keymap_get(&q->index, q->keys[i]);
        if (q->prev[i] != prev || node == NULL || (uint32_t)*node != i || ++count > q->n) {
            exo_policy_invariant("queue policy: its list and its index disagree");
            return -1;
        }
        prev = i;
    }
    if (prev != q->tail || count != q->n || (Py_ssize_t)q->index.size != q->n) {
        exo_policy_invariant("queue policy: %zd keys listed, %zd counted", count, q->n);
        return -1;
    }
    return 0;
}

static size_t q_nbytes(PyObject *self) {
    QueuePolicy *q = (QueuePolicy *)self;
    return keymap_bytes(&q->index) + (size_t)q->cap_nodes * (sizeof(int64_t) + 2 * sizeof(uint32_t));
}

static const ExoPolicyVT LRU_VT = {q_insert, lru_access, lru_touch, lru_touch, NULL, q_remove,
                                   q_victim, q_contains, q_len, q_verify, q_nbytes};
static const ExoPolicyVT FIFO_VT = {q_insert, fifo_access, NULL, NULL, NULL, q_remove,
                                    q_victim, q_contains, q_len, q_verify, q_nbytes};

static int q_init(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"capacity_blocks", NULL};
    long long cap;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L", kwlist, &cap)) return -1;
    if (cap <= 0) {
        PyErr_SetString(PyExc_ValueError, "capacity_blocks must be > 0");
        return -1;
    }
    QueuePolicy *q = (QueuePolicy *)self;
    if (q->base.vt != NULL) {
        PyErr_SetString(PyExc_TypeError, "a policy is initialised once");
        return -1;
    }
    q->base.capacity = cap;
    q->head = q->tail = q->free_head = NIL;
    q->cap_nodes = 0;
    q->n = 0;
    if (keymap_init(&q->index, 0) < 0) return -1;
    q->base.vt = PyObject_TypeCheck(self, LRU_Type) ? &LRU_VT : &FIFO_VT;
    return 0;
}

static void q_dealloc(PyObject *self) {
    QueuePolicy *q = (QueuePolicy *)self;
    PyTypeObject *tp = Py_TYPE(self);
    keymap_free(&q->index);
    PyMem_RawFree(q->keys);
    PyMem_RawFree(q->prev);
    PyMem_RawFree(q->next);
    tp->tp_free(self);
    Py_DECREF(tp);
}

int exo_queue_add_types(PyObject *module) {
    LRU_Type = exo_policy_make_type(module, "exo_sim._core.LRUPolicy",
                                    "Least recently used: the queue's head is the LRU key; a hit moves a key to the tail.",
                                    sizeof(QueuePolicy), q_init, q_dealloc, NULL);
    if (LRU_Type == NULL) return -1;
    FIFO_Type = exo_policy_make_type(module, "exo_sim._core.FIFOPolicy",
                                     "First in, first out: the queue's head is the oldest insertion; hits change nothing.",
                                     sizeof(QueuePolicy), q_init, q_dealloc, NULL);
    return FIFO_Type == NULL ? -1 : 0;
}
