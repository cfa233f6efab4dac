/* SIEVE (Zhang et al., NSDI '24): a FIFO queue with one visited bit per key and a hand that sweeps
 * from old to new; the pseudocode and the libCacheSim notes are in exo_sim/policies/sieve.py.
 *
 * One list, oldest first, and the hand: the node the next sweep starts at (NODE_NIL only when the
 * policy is empty). Survivors never move; the hand lands on the evicted key's newer neighbour, and
 * wraps to the oldest key when it passes the newest (libCacheSim's Sieve.c: pointer = NULL, then
 * the tail). A key removed while the hand is on it passes the hand on to its newer neighbour. */
#include "nodes.h"

typedef struct {
    ListPolicy lp; /* key -> node; a node's byte: its visited bit */
    NodeList list;
    uint32_t hand;
} Sieve;

/* The node after i, or the oldest when i is the newest (the hand's wrap). */
static inline uint32_t after(const Sieve *s, uint32_t i) {
    uint32_t n = s->lp.pool.next[i];
    return n == NODE_NIL ? s->list.head : n;
}

static int sieve_insert(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) {
    Sieve *s = (Sieve *)self;
    if (keymap_get(&s->lp.index, key) != NULL) return 0; /* resident already: it keeps its place */
    uint32_t i;
    if (listpolicy_add(&s->lp, key, &i) < 0) return -1;
    nodelist_push(&s->lp.pool, &s->list, i);
    s->lp.pool.bits[i] = 0; /* not visited */
    if (s->hand == NODE_NIL) s->hand = i;
    return 0;
}

static int sieve_touch(PyObject *self, int64_t key) {
    Sieve *s = (Sieve *)self;
    uint32_t i = listpolicy_node(&s->lp, key);
    if (i == NODE_NIL) return exo_key_error(key);
    s->lp.pool.bits[i] = 1;
    return 0;
}

static int sieve_access(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) { return sieve_touch(self, key); }

/* Unlink node i (not the hand) and forget its key. */
static void drop(Sieve *s, uint32_t i) {
    nodelist_unlink(&s->lp.pool, &s->list, i);
    listpolicy_forget(&s->lp, i);
}

static int sieve_remove(PyObject *self, int64_t key) {
    Sieve *s = (Sieve *)self;
    uint32_t i = listpolicy_node(&s->lp, key);
    if (i == NODE_NIL) return exo_key_error(key);
    if (s->hand == i) s->hand = s->lp.pool.next[i];
    drop(s, i);
    if (s->hand == NODE_NIL) s->hand = s->list.head;
    return 0;
}

static int sieve_victim(PyObject *self, int64_t *out) {
    Sieve *s = (Sieve *)self;
    if (s->list.n == 0) {
        PyErr_SetString(PyExc_KeyError, "victim(): the policy is empty");
        return -1;
    }
    uint8_t *visited = s->lp.pool.bits;
    uint32_t h = s->hand;
    while (visited[h]) {
        visited[h] = 0;
        h = after(s, h);
    }
    *out = s->lp.pool.keys[h];
    s->hand = s->lp.pool.next[h];
    drop(s, h);
    if (s->hand == NODE_NIL) s->hand = s->list.head;
    return 0;
}

static Py_ssize_t sieve_len(PyObject *self) { return ((Sieve *)self)->list.n; }

typedef struct {
    const Sieve *s;
    int hand_seen;
} SieveCheck;

static int check_node(uint32_t i, void *ctx) {
    SieveCheck *c = ctx;
    if (listpolicy_node(&c->s->lp, c->s->lp.pool.keys[i]) != i) return 2;
    if (c->s->lp.pool.bits[i] > 1) return 3;
    if (i == c->s->hand) c->hand_seen = 1;
    return 0;
}

static int sieve_verify(PyObject *self) {
    Sieve *s = (Sieve *)self;
    SieveCheck c = {s, 0};
    int rc = nodelist_check(&s->lp.pool, &s->list, check_node, &c);
    if (rc == NODELIST_BROKEN || rc == NODELIST_MISCOUNT || (Py_ssize_t)s->lp.index.size != s->list.n) {
        exo_policy_invariant("sieve: its queue (%zd keys) and its index (%zu keys) disagree", s->list.n,
                             s->lp.index.size);
        return -1;
    }
    if (rc == 2) {
        exo_policy_invariant("sieve: a queued key is missing from its index");
        return -1;
    }
    if (rc == 3) {
        exo_policy_invariant("sieve: a visited bit is neither 0 nor 1");
        return -1;
    }
    if (s->list.n > 0 && !c.hand_seen) {
        exo_policy_invariant("sieve: the hand is not on a resident key");
        return -1;
    }
    if (s->list.n == 0 && s->hand != NODE_NIL) {
        exo_policy_invariant("sieve: the hand is set in an empty queue");
        return -1;
    }
    return 0;
}

static const ExoPolicyVT SIEVE_VT = {sieve_insert, sieve_access, sieve_touch,    NULL,        NULL,        sieve_remove,
                                     sieve_victim, listpolicy_contains, sieve_len, sieve_verify, listpolicy_nbytes};

static int sieve_init(PyObject *self, PyObject *args, PyObject *kwds) {
    if (listpolicy_init(self, args, kwds, 1, "policy: more than 2**32 - 2 keys") < 0) return -1;
    Sieve *s = (Sieve *)self;
    nodelist_init(&s->list);
    s->hand = NODE_NIL;
    s->lp.base.vt = &SIEVE_VT;
    return 0;
}

int exo_sieve_add_type(PyObject *module) {
    PyTypeObject *t = exo_policy_make_type(
        module, "exo_sim._core.SievePolicy",
        "SIEVE eviction (Zhang et al., NSDI '24) with libCacheSim's hand and insertion conventions.", sizeof(Sieve),
        sieve_init, listpolicy_dealloc, NULL);
    if (t == NULL) return -1;
    Py_DECREF(t);
    return 0;
}
