/* ARC (Megiddo & Modha, FAST '03) as libCacheSim's ARC.c implements it; the algorithm, the hook
 * (prepare_insert) and the libCacheSim notes are in exo_sim/policies/arc.py.
 *
 * The four lists T1, T2 (resident) and B1, B2 (ghosts) are NodeLists over one NodePool (key, prev,
 * next and the node's list in its byte: 17 bytes a node; nodes.h), LRU end first, with one KeyMap
 * from key to node (the lists are disjoint). p is a double, as in libCacheSim. */
#include "nodes.h"

enum { T1, T2, B1, B2, N_LISTS };
static const char *const LIST_NAMES[N_LISTS] = {"T1", "T2", "B1", "B2"};

typedef struct {
    ListPolicy lp; /* key -> node for the keys of all four lists; a node's byte: its list */
    NodeList l[N_LISTS];
    double p;          /* target size of T1 in blocks */
    int ghost_hit;     /* 0, or the ghost list (1: B1, 2: B2) the pending key was found in */
    int has_pending;   /* a key was announced by prepare_insert and not yet inserted */
    int64_t pending;
} ARC;

static PyTypeObject *ARC_Type;

#define LIST(a, i) ((a)->lp.pool.bits[i])
#define KEY(a, i) ((a)->lp.pool.keys[i])

static inline void unlink_node(ARC *a, uint32_t i) { nodelist_unlink(&a->lp.pool, &a->l[LIST(a, i)], i); }

/* append node i at the MRU end of list w */
static inline void append_node(ARC *a, uint32_t i, int w) {
    LIST(a, i) = (uint8_t)w;
    nodelist_push(&a->lp.pool, &a->l[w], i);
}

/* a new node for key at the MRU end of list w */
static int add_key(ARC *a, int64_t key, int w) {
    uint32_t i;
    if (listpolicy_add(&a->lp, key, &i) < 0) return -1;
    append_node(a, i, w);
    return 0;
}

/* the node of key, or NODE_NIL */
static inline uint32_t node_of(const ARC *a, int64_t key) { return listpolicy_node(&a->lp, key); }

/* forget node i (unlinked from its list and from the index) */
static inline void drop_node(ARC *a, uint32_t i) {
    unlink_node(a, i);
    listpolicy_forget(&a->lp, i);
}

static int empty_error(int w) {
    PyErr_Format(PyExc_KeyError, "arc: %s is empty", LIST_NAMES[w]);
    return -1;
}

/* Adapt p for a ghost hit on key and drop the ghost entry; 0 (none), 1 (B1) or 2 (B2). */
static int ghost_lookup(ARC *a, int64_t key) {
    uint32_t i = node_of(a, key);
    if (i == NODE_NIL) return 0;
    double c = (double)a->lp.base.capacity;
    if (LIST(a, i) == B1) {
        double delta = (double)a->l[B2].n / (double)a->l[B1].n;
        double p = a->p + (delta > 1 ? delta : 1);
        a->p = p < c ? p : c;
        drop_node(a, i);
        return 1;
    }
    if (LIST(a, i) == B2) {
        double delta = (double)a->l[B1].n / (double)a->l[B2].n;
        double p = a->p - (delta > 1 ? delta : 1);
        a->p = p > 0 ? p : 0.0;
        drop_node(a, i);
        return 2;
    }
    return 0;
}

static int arc_prepare(PyObject *self, int64_t key) {
    ARC *a = (ARC *)self;
    a->pending = key;
    a->has_pending = 1;
    a->ghost_hit = ghost_lookup(a, key);
    return 0;
}

static int arc_insert(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) {
    ARC *a = (ARC *)self;
    int hit = (a->has_pending && key == a->pending) ? a->ghost_hit : ghost_lookup(a, key);
    a->ghost_hit = 0;
    a->has_pending = 0;
    uint32_t i = node_of(a, key);
    if (i != NODE_NIL) return 0; /* already resident (outside the contract): it keeps its place */
    return add_key(a, key, hit ? T2 : T1);
}

static int arc_touch(PyObject *self, int64_t key) {
    ARC *a = (ARC *)self;
    uint32_t i = node_of(a, key);
    if (i == NODE_NIL || LIST(a, i) >= B1) return exo_key_error(key);
    unlink_node(a, i);
    append_node(a, i, T2);
    return 0;
}

static int arc_access(PyObject *self, int64_t key, int64_t Py_UNUSED(next)) { return arc_touch(self, key); }

static int arc_remove(PyObject *self, int64_t key) {
    ARC *a = (ARC *)self;
    uint32_t i = node_of(a, key);
    if (i == NODE_NIL || LIST(a, i) >= B1) return exo_key_error(key);
    drop_node(a, i); /* a promotion is not an eviction: no ghost entry */
    return 0;
}

/* REPLACE of the paper: demote the LRU of T1 or T2 to the MRU end of its ghost list; return it. */
static int replace(ARC *a, int64_t *out) {
    Py_ssize_t n1 = a->l[T1].n;
    int from = T2;
    if ((n1 && ((double)n1 > a->p || ((double)n1 == a->p && a->ghost_hit == 2))) || a->l[T2].n == 0) from = T1;
    uint32_t i = a->l[from].head;
    if (i == NODE_NIL) return empty_error(from);
    unlink_node(a, i);
    append_node(a, i, from == T1 ? B1 : B2);
    *out = KEY(a, i);
    return 0;
}

/* drop the LRU entry of ghost list w */
static int drop_lru(ARC *a, int w) {
    uint32_t i = a->l[w].head;
    if (i == NODE_NIL) return empty_error(w);
    drop_node(a, i);
    return 0;
}

static int arc_victim(PyObject *self, int64_t *out) {
    ARC *a = (ARC *)self;
    if (a->ghost_hit) return replace(a, out);
    int64_t c = a->lp.base.capacity;
    if (a->l[T1].n + a->l[B1].n + 1 > c) {
        if (a->l[B1].n) {
            drop_lru(a, B1);
            return replace(a, out);
        }
        uint32_t i = a->l[T1].head; /* T1 U B1 is full and B1 empty: the T1 victim leaves without a ghost */
        if (i == NODE_NIL) return empty_error(T1);
        *out = KEY(a, i);
        drop_node(a, i);
        return 0;
    }
    if (a->l[B2].n && a->l[T1].n + a->l[B1].n + a->l[T2].n + a->l[B2].n >= 2 * c) drop_lru(a, B2);
    return replace(a, out);
}

static int arc_contains(PyObject *self, int64_t key) {
    ARC *a = (ARC *)self;
    uint32_t i = node_of(a, key);
    return i != NODE_NIL && LIST(a, i) < B1;
}

static Py_ssize_t arc_len(PyObject *self) {
    ARC *a = (ARC *)self;
    return a->l[T1].n + a->l[T2].n;
}

typedef struct {
    const ARC *a;
    int w;
    Py_ssize_t count;
} ArcCheck;

/* a node of list w must be tagged w and named by the index (one index: a key is in one list at most) */
static int check_node(uint32_t i, void *ctx) {
    ArcCheck *c = ctx;
    c->count++;
    return (LIST(c->a, i) != c->w || node_of(c->a, KEY(c->a, i)) != i) ? 2 : 0;
}

static int arc_verify(PyObject *self) {
    ARC *a = (ARC *)self;
    Py_ssize_t total = 0;
    for (int w = 0; w < N_LISTS; w++) {
        ArcCheck c = {a, w, 0};
        int rc = nodelist_check(&a->lp.pool, &a->l[w], check_node, &c);
        if (rc > 0) {
            exo_policy_invariant("arc: %s's links, its tags and the index disagree", LIST_NAMES[w]);
            return -1;
        }
        if (rc == NODELIST_MISCOUNT) {
            exo_policy_invariant("arc: %s holds %zd keys, counted %zd", LIST_NAMES[w], c.count, a->l[w].n);
            return -1;
        }
        total += c.count;
    }
    if ((Py_ssize_t)a->lp.index.size != total) {
        exo_policy_invariant("arc: the index holds %zd keys, the lists %zd", (Py_ssize_t)a->lp.index.size, total);
        return -1;
    }
    int64_t c = a->lp.base.capacity;
    if (!(a->p >= 0 && a->p <= (double)c)) {
        PyObject *p = PyFloat_FromDouble(a->p);
        if (p != NULL) exo_policy_invariant("arc: p = %R outside [0, %lld]", p, (long long)c);
        Py_XDECREF(p);
        return -1;
    }
    Py_ssize_t ghosts = a->l[B1].n + a->l[B2].n;
    if (ghosts > 2 * c) {
        exo_policy_invariant("arc: %zd ghost entries exceed 2c = %lld", ghosts, (long long)(2 * c));
        return -1;
    }
    return 0;
}

static const ExoPolicyVT ARC_VT = {arc_insert, arc_access, arc_touch, NULL,      arc_prepare, arc_remove,
                                   arc_victim, arc_contains, arc_len, arc_verify, listpolicy_nbytes};

static PyObject *arc_list_of(PyObject *self, PyObject *arg) {
    ARC *a = (ARC *)self;
    if (a->lp.base.vt == NULL) {
        PyErr_SetString(PyExc_TypeError, "policy object was not initialised");
        return NULL;
    }
    int64_t key;
    if (exo_as_key(arg, &key) < 0) return NULL;
    uint32_t i = node_of(a, key);
    if (i == NODE_NIL) Py_RETURN_NONE;
    return PyUnicode_FromString(LIST_NAMES[LIST(a, i)]);
}

static PyObject *arc_get_p(PyObject *self, void *Py_UNUSED(c)) { return PyFloat_FromDouble(((ARC *)self)->p); }

static PyMethodDef arc_methods[] = {
    {"list_of", (PyCFunction)arc_list_of, METH_O,
     "The list holding ``key``: ``'T1'`` or ``'T2'`` (resident), ``'B1'`` or ``'B2'`` (ghost), or ``None``."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef arc_getset[] = {
    {"p", arc_get_p, NULL, "Target size of T1 in blocks (a float, as in libCacheSim).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static int arc_init(PyObject *self, PyObject *args, PyObject *kwds) {
    if (listpolicy_init(self, args, kwds, 1, "arc: more than 2**32 - 2 keys") < 0) return -1;
    ARC *a = (ARC *)self;
    for (int w = 0; w < N_LISTS; w++) nodelist_init(&a->l[w]);
    a->p = 0.0;
    a->ghost_hit = 0;
    a->has_pending = 0;
    a->lp.base.vt = &ARC_VT;
    return 0;
}

int exo_arc_add_type(PyObject *module) {
    ARC_Type = exo_policy_make_type(module, "exo_sim._core.ARCPolicy",
                                    "Adaptive Replacement Cache (Megiddo & Modha, FAST '03) as implemented by libCacheSim.",
                                    sizeof(ARC), arc_init, listpolicy_dealloc, arc_methods);
    if (ARC_Type == NULL) return -1;
    /* the getter for p: added to the type's dict, as the base's getters are */
    PyObject *descr = PyDescr_NewGetSet(ARC_Type, &arc_getset[0]);
    if (descr == NULL) return -1;
    int rc = PyObject_SetAttrString((PyObject *)ARC_Type, "p", descr);
    Py_DECREF(descr);
    return rc;
}
