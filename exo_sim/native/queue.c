/* The queue policies: resident keys form one queue, inserted at the tail, evicted from the head.
 *
 * LRU: a hit (and, under prefix reuse, a release) moves the key to the tail, so the head is the least
 * recently used key; libCacheSim's LRU.c exactly (insert at head, evict tail, hit moves to head).
 * FIFO: a hit changes nothing (touch is None, no release hook); libCacheSim's FIFO.c exactly.
 *
 * The queue is a NodeList over a NodePool without the per-node byte (key, prev, next: 16 bytes a
 * node; nodes.h), with a KeyMap from key to node. */
#include "nodes.h"

typedef struct {
    ListPolicy lp; /* key -> node; a pool without the per-node byte */
    NodeList queue;
} QueuePolicy;

static PyTypeObject *LRU_Type, *FIFO_Type;

static int q_insert(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) {
    QueuePolicy *q = (QueuePolicy *)self;
    if (keymap_get(&q->lp.index, key) != NULL) {
        /* as an OrderedDict assignment: an existing key keeps its place */
        return 0;
    }
    uint32_t i;
    if (listpolicy_add(&q->lp, key, &i) < 0) return -1;
    nodelist_push(&q->lp.pool, &q->queue, i);
    return 0;
}

static int lru_touch(PyObject *self, int64_t key) {
    QueuePolicy *q = (QueuePolicy *)self;
    uint32_t i = listpolicy_node(&q->lp, key);
    if (i == NODE_NIL) return exo_key_error(key);
    if (q->queue.tail != i) {
        nodelist_unlink(&q->lp.pool, &q->queue, i);
        nodelist_push(&q->lp.pool, &q->queue, i);
    }
    return 0;
}

static int lru_access(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) { return lru_touch(self, key); }

static int fifo_access(PyObject *Py_UNUSED(self), int64_t Py_UNUSED(key), int64_t Py_UNUSED(next)) { return 0; }

static int q_remove(PyObject *self, int64_t key) {
    QueuePolicy *q = (QueuePolicy *)self;
    uint32_t i = listpolicy_node(&q->lp, key);
    if (i == NODE_NIL) return exo_key_error(key);
    keymap_del(&q->lp.index, key);
    nodelist_unlink(&q->lp.pool, &q->queue, i);
    nodepool_give(&q->lp.pool, i);
    return 0;
}

static int q_victim(PyObject *self, int64_t *out) {
    QueuePolicy *q = (QueuePolicy *)self;
    if (q->queue.head == NODE_NIL) {
        PyErr_SetString(PyExc_KeyError, "victim(): the queue is empty");
        return -1;
    }
    *out = q->lp.pool.keys[q->queue.head];
    return q_remove(self, *out);
}

static Py_ssize_t q_len(PyObject *self) { return ((QueuePolicy *)self)->queue.n; }

/* a listed node's key must name it in the index */
static int check_node(uint32_t i, void *ctx) {
    const QueuePolicy *q = ctx;
    return listpolicy_node(&q->lp, q->lp.pool.keys[i]) != i ? 2 : 0;
}

static int q_verify(PyObject *self) {
    QueuePolicy *q = (QueuePolicy *)self;
    int rc = nodelist_check(&q->lp.pool, &q->queue, check_node, q);
    if (rc > 0) {
        exo_policy_invariant("queue policy: its list and its index disagree");
        return -1;
    }
    if (rc == NODELIST_MISCOUNT || (Py_ssize_t)q->lp.index.size != q->queue.n) {
        Py_ssize_t count = 0;
        for (uint32_t i = q->queue.head; i != NODE_NIL; i = q->lp.pool.next[i]) count++;
        exo_policy_invariant("queue policy: %zd keys listed, %zd counted", count, q->queue.n);
        return -1;
    }
    return 0;
}

static const ExoPolicyVT LRU_VT = {q_insert, lru_access, lru_touch, lru_touch, NULL, q_remove,
                                   q_victim, listpolicy_contains, q_len, q_verify, listpolicy_nbytes};
static const ExoPolicyVT FIFO_VT = {q_insert, fifo_access, NULL, NULL, NULL, q_remove,
                                    q_victim, listpolicy_contains, q_len, q_verify, listpolicy_nbytes};

static int q_init(PyObject *self, PyObject *args, PyObject *kwds) {
    if (listpolicy_init(self, args, kwds, 0, "queue policy: more than 2**32 - 2 resident keys") < 0) return -1;
    QueuePolicy *q = (QueuePolicy *)self;
    nodelist_init(&q->queue);
    q->lp.base.vt = PyObject_TypeCheck(self, LRU_Type) ? &LRU_VT : &FIFO_VT;
    return 0;
}

int exo_queue_add_types(PyObject *module) {
    LRU_Type = exo_policy_make_type(module, "exo_sim._core.LRUPolicy",
                                    "Least recently used: the queue's head is the LRU key; a hit moves a key to the tail.",
                                    sizeof(QueuePolicy), q_init, listpolicy_dealloc, NULL);
    if (LRU_Type == NULL) return -1;
    FIFO_Type = exo_policy_make_type(module, "exo_sim._core.FIFOPolicy",
                                     "First in, first out: the queue's head is the oldest insertion; hits change nothing.",
                                     sizeof(QueuePolicy), q_init, listpolicy_dealloc, NULL);
    return FIFO_Type == NULL ? -1 : 0;
}
