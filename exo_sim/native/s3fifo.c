/* S3-FIFO (Yang et al., SOSP '23) with libCacheSim's S3FIFO sizes and rules: a small probationary
 * FIFO, a main FIFO run as a 2-bit CLOCK and a ghost FIFO of keys; the pseudocode and the
 * libCacheSim notes are in exo_sim/policies/s3fifo.py.
 *
 * The three FIFOs are lists over one node pool (a ListPolicy, nodes.h), and one KeyMap names the
 * node of every resident key and every ghost (a key is in at most one of the three). A node's byte
 * holds its queue (bits 0-1) and its hit counter (bits 2-3). The counter saturates at 3: the policy
 * only ever asks whether it is >= 1 or >= 2 and what min(count, 3) is, so the decisions are those of
 * an unbounded count. */
#include "nodes.h"

#define SMALL_SIZE_RATIO 0.10
#define GHOST_SIZE_RATIO 0.90
#define MOVE_TO_MAIN_THRESHOLD 2

enum { SMALL = 0, MAIN = 1, GHOST = 2 };

typedef struct {
    ListPolicy lp; /* key -> node, resident keys and ghosts; a node's byte: queue and hit counter */
    NodeList q[3];
    int64_t small_size, main_size, ghost_size;
    int has_evicted;
} S3FIFO;

#define QUEUE(b) ((b) & 3)
#define FREQ(b) ((b) >> 2)
#define BITS(queue, freq) ((uint8_t)((queue) | ((freq) << 2)))

static int s3_insert(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) {
    S3FIFO *s = (S3FIFO *)self;
    NodePool *p = &s->lp.pool;
    uint32_t i = listpolicy_node(&s->lp, key);
    if (i != NODE_NIL) {
        if (QUEUE(p->bits[i]) == GHOST) { /* it came back soon: keep it longer */
            nodelist_unlink(p, &s->q[GHOST], i);
            nodelist_push(p, &s->q[MAIN], i);
            p->bits[i] = BITS(MAIN, 0);
        } /* else resident already: it keeps its place and its count */
    } else {
        int to = (!s->has_evicted && s->q[SMALL].n >= s->small_size) ? MAIN : SMALL;
        if (listpolicy_add(&s->lp, key, &i) < 0) return -1;
        nodelist_push(p, &s->q[to], i);
        p->bits[i] = BITS(to, 0);
    }
    /* the ghost is trimmed here, lazily: victims were appended to it untrimmed */
    NodeList *g = &s->q[GHOST];
    while (g->n > s->ghost_size) {
        uint32_t h = g->head;
        nodelist_unlink(p, g, h);
        listpolicy_forget(&s->lp, h);
    }
    return 0;
}

/* The node of the resident key, or NODE_NIL (absent, or a ghost). */
static inline uint32_t resident(const S3FIFO *s, int64_t key) {
    uint32_t i = listpolicy_node(&s->lp, key);
    return (i == NODE_NIL || QUEUE(s->lp.pool.bits[i]) == GHOST) ? NODE_NIL : i;
}

static int s3_touch(PyObject *self, int64_t key) {
    S3FIFO *s = (S3FIFO *)self;
    uint32_t i = resident(s, key);
    if (i == NODE_NIL) return exo_key_error(key);
    uint8_t b = s->lp.pool.bits[i];
    if (FREQ(b) < 3) s->lp.pool.bits[i] = (uint8_t)(b + (1 << 2));
    return 0;
}

static int s3_access(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) { return s3_touch(self, key); }

static int s3_remove(PyObject *self, int64_t key) {
    S3FIFO *s = (S3FIFO *)self;
    uint32_t i = resident(s, key);
    if (i == NODE_NIL) return exo_key_error(key);
    nodelist_unlink(&s->lp.pool, &s->q[QUEUE(s->lp.pool.bits[i])], i); /* not ghosted: it leaves hot */
    listpolicy_forget(&s->lp, i);
    return 0;
}

static int s3_victim(PyObject *self, int64_t *out) {
    S3FIFO *s = (S3FIFO *)self;
    NodePool *p = &s->lp.pool;
    NodeList *small = &s->q[SMALL], *main = &s->q[MAIN];
    s->has_evicted = 1; /* as libCacheSim, set even when there is nothing to evict */
    if (small->n == 0 && main->n == 0) {
        PyErr_SetString(PyExc_KeyError, "victim(): the policy is empty");
        return -1;
    }
    if (small->n > 0 && main->n <= s->main_size) {
        while (small->n > 0) {
            uint32_t i = small->head;
            nodelist_unlink(p, small, i);
            if (FREQ(p->bits[i]) >= MOVE_TO_MAIN_THRESHOLD) {
                nodelist_push(p, main, i);
                p->bits[i] = BITS(MAIN, 0);
                continue;
            }
            *out = p->keys[i];
            if (s->ghost_size > 0) {
                nodelist_push(p, &s->q[GHOST], i);
                p->bits[i] = BITS(GHOST, 0);
            } else {
                listpolicy_forget(&s->lp, i);
            }
            return 0;
        }
    }
    for (;;) { /* main is a CLOCK with a 2-bit counter */
        uint32_t i = main->head;
        nodelist_unlink(p, main, i);
        unsigned f = FREQ(p->bits[i]);
        if (f > 0) {
            nodelist_push(p, main, i);
            p->bits[i] = BITS(MAIN, f - 1); /* f is min(count, 3) already */
            continue;
        }
        *out = p->keys[i];
        listpolicy_forget(&s->lp, i);
        return 0;
    }
}

static int s3_contains(PyObject *self, int64_t key) { return resident((S3FIFO *)self, key) != NODE_NIL; }

static Py_ssize_t s3_len(PyObject *self) {
    S3FIFO *s = (S3FIFO *)self;
    return s->q[SMALL].n + s->q[MAIN].n;
}

typedef struct {
    const S3FIFO *s;
    int queue;
} S3Check;

static int check_node(uint32_t i, void *ctx) {
    const S3Check *c = ctx;
    if (listpolicy_node(&c->s->lp, c->s->lp.pool.keys[i]) != i) return 2;
    uint8_t b = c->s->lp.pool.bits[i];
    if (QUEUE(b) != c->queue || (c->queue == GHOST && FREQ(b) != 0)) return 3;
    return 0;
}

static int s3_verify(PyObject *self) {
    static const char *names[] = {"small", "main", "ghost"};
    S3FIFO *s = (S3FIFO *)self;
    for (int q = SMALL; q <= GHOST; q++) {
        S3Check c = {s, q};
        int rc = nodelist_check(&s->lp.pool, &s->q[q], check_node, &c);
        if (rc == NODELIST_BROKEN || rc == NODELIST_MISCOUNT) {
            exo_policy_invariant("s3fifo: the %s queue's links disagree with its count %zd", names[q], s->q[q].n);
            return -1;
        }
        if (rc == 2) {
            exo_policy_invariant("s3fifo: a key of the %s queue is missing from the index", names[q]);
            return -1;
        }
        if (rc == 3) {
            exo_policy_invariant("s3fifo: a key of the %s queue is marked as elsewhere or counts hits", names[q]);
            return -1;
        }
    }
    if ((Py_ssize_t)s->lp.index.size != s->q[SMALL].n + s->q[MAIN].n + s->q[GHOST].n) {
        exo_policy_invariant("s3fifo: queues and index disagree (%zu indexed)", s->lp.index.size);
        return -1;
    }
    if (s->small_size + s->main_size != s->lp.base.capacity) {
        exo_policy_invariant("s3fifo: queue sizes do not add up to the capacity");
        return -1;
    }
    return 0;
}

static const ExoPolicyVT S3FIFO_VT = {s3_insert, s3_access,   s3_touch, NULL,      NULL,     s3_remove,
                                      s3_victim, s3_contains, s3_len,   s3_verify, listpolicy_nbytes};

static int s3_init(PyObject *self, PyObject *args, PyObject *kwds) {
    if (listpolicy_init(self, args, kwds, 1, "policy: more than 2**32 - 2 keys") < 0) return -1;
    S3FIFO *s = (S3FIFO *)self;
    int64_t cap = s->lp.base.capacity;
    /* C's truncating casts of the double products, as libCacheSim (and Python's int()) */
    s->small_size = (int64_t)((double)cap * SMALL_SIZE_RATIO);
    if (s->small_size < 1) s->small_size = 1;
    s->main_size = cap - s->small_size;
    s->ghost_size = (int64_t)((double)cap * GHOST_SIZE_RATIO);
    s->has_evicted = 0;
    for (int q = SMALL; q <= GHOST; q++) nodelist_init(&s->q[q]);
    s->lp.base.vt = &S3FIFO_VT;
    return 0;
}

static PyObject *s3_queue_of(PyObject *self, PyObject *arg) {
    S3FIFO *s = (S3FIFO *)self;
    if (s->lp.base.vt == NULL) {
        PyErr_SetString(PyExc_TypeError, "policy object was not initialised");
        return NULL;
    }
    int64_t key;
    if (exo_as_key(arg, &key) < 0) return NULL;
    uint32_t i = listpolicy_node(&s->lp, key);
    if (i == NODE_NIL) Py_RETURN_NONE;
    static const char *names[] = {"small", "main", "ghost"};
    return PyUnicode_FromString(names[QUEUE(s->lp.pool.bits[i])]);
}

static PyMethodDef s3_methods[] = {
    {"queue_of", (PyCFunction)s3_queue_of, METH_O,
     "Which FIFO holds ``key``: ``'small'``, ``'main'``, ``'ghost'``, or ``None``."},
    {NULL, NULL, 0, NULL},
};

static PyObject *get_small_size(PyObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(((S3FIFO *)self)->small_size);
}
static PyObject *get_main_size(PyObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(((S3FIFO *)self)->main_size);
}
static PyObject *get_ghost_size(PyObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(((S3FIFO *)self)->ghost_size);
}

static PyGetSetDef s3_sizes[] = {
    {"small_size", get_small_size, NULL, "Blocks the small (probationary) FIFO holds: max(1, int(capacity * 0.1)).",
     NULL},
    {"main_size", get_main_size, NULL, "Blocks the main FIFO holds: capacity - small_size.", NULL},
    {"ghost_size", get_ghost_size, NULL, "Keys the ghost FIFO remembers: int(capacity * 0.9).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

int exo_s3fifo_add_type(PyObject *module) {
    PyTypeObject *t = exo_policy_make_type(
        module, "exo_sim._core.S3FIFOPolicy",
        "S3-FIFO (Yang et al., SOSP '23) with libCacheSim's ``S3FIFO`` sizes and rules.", sizeof(S3FIFO), s3_init,
        listpolicy_dealloc, s3_methods);
    if (t == NULL) return -1;
    for (PyGetSetDef *d = s3_sizes; d->name != NULL; d++) {
        PyObject *descr = PyDescr_NewGetSet(t, d);
        if (descr == NULL || PyObject_SetAttrString((PyObject *)t, d->name, descr) < 0) {
            Py_XDECREF(descr);
            Py_DECREF(t);
            return -1;
        }
        Py_DECREF(descr);
    }
    Py_DECREF(t);
    return 0;
}
