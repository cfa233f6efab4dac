/* The decision core: the tiers of a hierarchy and the one loop over a request's blocks that every
 * clock calls (the replay with no clock, the timed model, the runtime). exo_sim/hierarchy.py is its
 * Python face (counters, flows, invariants) and documents the rules; this file is their only
 * implementation:
 *
 *   access(b):
 *       t = tier holding b (the highest one, under write-through)
 *       t is the top tier      -> hit; policy(top).access(b)
 *       t is a lower tier      -> hit at t, miss above it; promote b to the top tier
 *                                 (exclusive: b leaves t; write-through: the last tier keeps its copy)
 *       nowhere                -> miss everywhere; b is computed and admitted to the top tier
 *                                 (write-through: and persisted to the last tier)
 *   admit(k, b):
 *       if tier k would go over its high watermark:
 *           evict victims (policy(k).victim()) until it is at its low watermark, each one
 *           demoted to the next usable tier (admit(k+1, victim), cascading) or dropped off the last
 *       policy(k).insert(b)
 *
 * Prefix reuse (find / use / compute / end_request) pins a request's blocks in the top tier until it
 * ends, keeps extra copies of recomputed blocks under negative keys, and frees uncacheable (partial)
 * blocks at the request's end. Those books (copies, owner, transient) are Python containers: they
 * are touched only on those rare paths. Everything else is C: the block index is a KeyMap. */
#include "core.h"

typedef struct {
    PyObject_HEAD
    int n, top, last, write_through, needs_future, record_moves;
    int *below; /* next usable tier below each, -1 below the last */
    PolicyRef *pol; /* obj == NULL at bypassed tiers */
    PyObject *policies; /* list: the policy objects, None at bypassed tiers */
    PyObject *moves;    /* list of Move */
    PyObject *move_type;
    int64_t *high, *evict_to, *bytes;
    int64_t *used, *peak, *hits, *promotions, *demotions, *drops, *stranded, *change_time;
    int64_t accesses, new_blocks, recomputed_blocks, persists, now, next_key;
    KeyMap where, next_access, pinned_set;
    int64_t *pinned;
    size_t n_pinned, cap_pinned;
    int64_t *flow_mark; /* take_flows: promotions, demotions, drops per tier, computed, persists at the last call */
    PyObject *copies, *owner, *transient; /* dict[int, list[int]], dict[int, int], set[int] */
} Core;

#define NONE_TIER (-1)

/* ------------------------------------------------------------------ small helpers */
static inline int tier_of(Core *h, int64_t key) {
    int64_t *v = keymap_get(&h->where, key);
    return v == NULL ? NONE_TIER : (int)*v;
}

static inline int64_t next_of(Core *h, int64_t key) {
    if (!h->needs_future) return EXO_NEVER;
    int64_t *v = keymap_get(&h->next_access, key);
    return v == NULL ? EXO_NEVER : *v;
}

static inline int set_next(Core *h, int64_t key, int64_t na) {
    return h->needs_future ? keymap_put(&h->next_access, key, na) : 0;
}

static inline int has_copies(Core *h) { return PyDict_GET_SIZE(h->copies) != 0; }

static void set_used(Core *h, int k, int64_t value) {
    h->change_time[k] += (value - h->used[k]) * h->now;
    h->used[k] = value;
    if (value > h->peak[k]) h->peak[k] = value;
}

static int record(Core *h, int64_t block, int src, int dst, int64_t bsrc, int64_t bdst) {
    PyObject *s = src < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(src);
    PyObject *d = dst < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(dst);
    if (s == NULL || d == NULL) {
        Py_XDECREF(s);
        Py_XDECREF(d);
        return -1;
    }
    PyObject *t = Py_BuildValue("(LNNLL)", (long long)block, s, d, (long long)bsrc, (long long)bdst);
    if (t == NULL) return -1;
    /* tuple.__new__(Move, t): a Move without NamedTuple's Python-level __new__ */
    PyObject *args = PyTuple_Pack(1, t);
    Py_DECREF(t);
    if (args == NULL) return -1;
    PyObject *move = PyTuple_Type.tp_new((PyTypeObject *)h->move_type, args, NULL);
    Py_DECREF(args);
    if (move == NULL) return -1;
    int rc = PyList_Append(h->moves, move);
    Py_DECREF(move);
    return rc;
}

static int drop_move(Core *h, int64_t v, int k) {
    return h->record_moves ? record(h, v, k, -1, h->bytes[k], 0) : 0;
}

static int pin(Core *h, int64_t key) {
    if (tier_of(h, key) != h->top) return 0;
    if (h->n_pinned == h->cap_pinned) {
        size_t cap = h->cap_pinned ? h->cap_pinned * 2 : 64;
        int64_t *p = PyMem_RawRealloc(h->pinned, cap * sizeof(int64_t));
        if (p == NULL) return PyErr_NoMemory(), -1;
        h->pinned = p;
        h->cap_pinned = cap;
    }
    h->pinned[h->n_pinned++] = key;
    return keymap_put(&h->pinned_set, key, 1);
}

/* ------------------------------------------------------------------ copies (prefix reuse's books) */
/* copies.get(b) as a borrowed list, or NULL (no exception) */
static PyObject *copies_of(Core *h, int64_t b, PyObject **bkey) {
    *bkey = PyLong_FromLongLong(b);
    if (*bkey == NULL) return NULL;
    return PyDict_GetItemWithError(h->copies, *bkey);
}

static int list_is_just(PyObject *keys, int64_t b) {
    if (PyList_GET_SIZE(keys) != 1) return 0;
    long long v = PyLong_AsLongLong(PyList_GET_ITEM(keys, 0));
    return v == b;
}

/* victim v leaves its tier: if another copy of its block stays, forget v and return 1 */
static int other_copy(Core *h, int64_t v) {
    PyObject *vkey = PyLong_FromLongLong(v);
    if (vkey == NULL) return -1;
    int64_t b = v;
    PyObject *o = PyDict_GetItemWithError(h->owner, vkey);
    if (o != NULL) b = PyLong_AsLongLong(o);
    else if (PyErr_Occurred()) goto fail;
    PyObject *bkey;
    PyObject *keys = copies_of(h, b, &bkey);
    if (bkey == NULL) goto fail;
    if (keys == NULL) {
        Py_DECREF(bkey);
        Py_DECREF(vkey);
        return PyErr_Occurred() ? -1 : 0;
    }
    if (PyList_GET_SIZE(keys) < 2) {
        Py_DECREF(bkey);
        Py_DECREF(vkey);
        return 0;
    }
    PyObject *r = PyObject_CallMethod(keys, "remove", "O", vkey);
    if (r == NULL) goto fail_b;
    Py_DECREF(r);
    if (v != b && PyDict_DelItem(h->owner, vkey) < 0) goto fail_b;
    if (list_is_just(keys, b) && PyDict_DelItem(h->copies, bkey) < 0) goto fail_b;
    Py_DECREF(bkey);
    Py_DECREF(vkey);
    return 1;
fail_b:
    Py_DECREF(bkey);
fail:
    Py_DECREF(vkey);
    return -1;
}

/* v was dropped and is resident nowhere now: it is no longer a copy of its block */
static int forget(Core *h, int64_t v) {
    PyObject *vkey = PyLong_FromLongLong(v);
    if (vkey == NULL) return -1;
    int64_t b = v;
    PyObject *o = PyDict_GetItemWithError(h->owner, vkey);
    if (o != NULL) {
        b = PyLong_AsLongLong(o);
        if (PyDict_DelItem(h->owner, vkey) < 0) goto fail;
    } else if (PyErr_Occurred()) {
        goto fail;
    }
    PyObject *bkey;
    PyObject *keys = copies_of(h, b, &bkey);
    if (bkey == NULL) goto fail;
    if (keys != NULL) {
        int in = PySequence_Contains(keys, vkey);
        if (in < 0) goto fail_b;
        if (in) {
            PyObject *r = PyObject_CallMethod(keys, "remove", "O", vkey);
            if (r == NULL) goto fail_b;
            Py_DECREF(r);
            if ((PyList_GET_SIZE(keys) == 0 || list_is_just(keys, b)) && PyDict_DelItem(h->copies, bkey) < 0)
                goto fail_b;
        }
    } else if (PyErr_Occurred()) {
        goto fail_b;
    }
    Py_DECREF(bkey);
    Py_DECREF(vkey);
    return 0;
fail_b:
    Py_DECREF(bkey);
fail:
    Py_DECREF(vkey);
    return -1;
}

/* ------------------------------------------------------------------ the cascade */
static int admit(Core *h, int k, int64_t b, int64_t na, int src);

/* the top tier's next victim that the request in flight does not hold */
static int victim_unpinned(Core *h, int64_t *out) {
    PolicyRef *p = &h->pol[h->top];
    int64_t v;
    if (pol_victim(p, &v) < 0) return -1;
    if (keymap_get(&h->pinned_set, v) == NULL) {
        *out = v;
        return 0;
    }
    size_t n = 0, cap = 16;
    int64_t *held = PyMem_RawMalloc(cap * sizeof(int64_t));
    if (held == NULL) return PyErr_NoMemory(), -1;
    while (keymap_get(&h->pinned_set, v) != NULL) {
        if (n == cap) {
            cap *= 2;
            int64_t *more = PyMem_RawRealloc(held, cap * sizeof(int64_t));
            if (more == NULL) {
                PyMem_RawFree(held);
                return PyErr_NoMemory(), -1;
            }
            held = more;
        }
        held[n++] = v;
        if (pol_victim(p, &v) < 0) {
            PyMem_RawFree(held);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (pol_insert(p, held[i], next_of(h, held[i])) < 0) {
            PyMem_RawFree(held);
            return -1;
        }
    }
    PyMem_RawFree(held);
    *out = v;
    return 0;
}

static inline int take_victim(Core *h, int k, int unpinned, int64_t *out) {
    return unpinned ? victim_unpinned(h, out) : pol_victim(&h->pol[k], out);
}

/* write-through: victim v of tier k stays resident in another tier under the same key */
static int kept_elsewhere(Core *h, int k, int64_t v) {
    if (!h->write_through) return 0;
    if (k == h->last) {
        int t = tier_of(h, v);
        return (t == NONE_TIER ? k : t) != k;
    }
    return h->pol[h->last].obj != NULL ? pol_contains(&h->pol[h->last], v) : 0;
}

/* victim v left tier k: the tier to demote it to (*dst), or -1 when it is dropped */
static int route(Core *h, int k, int64_t v, int *dst) {
    int below = h->below[k];
    if (has_copies(h)) {
        int kept = kept_elsewhere(h, k, v);
        if (kept < 0) return -1;
        if (!kept) {
            int oc = other_copy(h, v);
            if (oc < 0) return -1;
            if (oc) {
                h->drops[k]++;
                if (tier_of(h, v) == k) keymap_del(&h->where, v);
                *dst = -1;
                return drop_move(h, v, k);
            }
        }
    }
    if (h->write_through) {
        int last = h->last;
        if (k == last) {
            h->drops[k]++;
            if (tier_of(h, v) == last) {
                keymap_del(&h->where, v);
                if (has_copies(h) && forget(h, v) < 0) return -1;
            }
            *dst = -1;
            return drop_move(h, v, k);
        }
        if (below == last) {
            int in = pol_contains(&h->pol[last], v);
            if (in < 0) return -1;
            if (in) {
                h->drops[k]++;
                if (keymap_put(&h->where, v, last) < 0) return -1;
                *dst = -1;
                return drop_move(h, v, k);
            }
        }
    }
    if (below < 0) {
        h->drops[k]++;
        keymap_del(&h->where, v);
        if (has_copies(h) && forget(h, v) < 0) return -1;
        *dst = -1;
        return drop_move(h, v, k);
    }
    h->demotions[k]++;
    if (h->write_through) keymap_del(&h->where, v); /* a demotion into the last tier re-indexes it there */
    *dst = below;
    return 0;
}

static inline int index_admitted(Core *h, int k, int64_t b) {
    if (h->write_through && k == h->last && keymap_get(&h->where, b) != NULL) return 0;
    return keymap_put(&h->where, b, k);
}

/* Admit b (coming from tier src, or computed: -1) into tier k; victims cascade down. A full tier
 * gives up one victim per admitted block, the common case, carried down by this loop; a tier over
 * its high watermark that evicts down to a lower watermark gives up several, all but the last routed
 * by recursion. */
static int admit(Core *h, int k, int64_t b, int64_t na, int src) {
    for (;;) {
        PolicyRef *p = &h->pol[k];
        int unpinned = h->pinned_set.size != 0 && k == h->top;
        if (h->record_moves && record(h, b, src, k, src >= 0 ? h->bytes[src] : 0, h->bytes[k]) < 0) return -1;
        if (pol_has_prepare(p) && pol_prepare(p, b) < 0) return -1;
        int64_t u = h->used[k];
        if (u < h->high[k]) {
            if (pol_insert(p, b, na) < 0) return -1;
            h->used[k] = u + 1;
            h->change_time[k] += h->now;
            if (u >= h->peak[k]) h->peak[k] = u + 1;
            return index_admitted(h, k, b);
        }
        int64_t n_out = u - h->evict_to[k];
        int64_t v;
        int64_t *victims = NULL;
        if (n_out == 1) {
            if (take_victim(h, k, unpinned, &v) < 0) return -1;
        } else {
            victims = PyMem_RawMalloc((size_t)n_out * sizeof(int64_t));
            if (victims == NULL) return PyErr_NoMemory(), -1;
            for (int64_t i = 0; i < n_out; i++) {
                if (take_victim(h, k, unpinned, &victims[i]) < 0) {
                    PyMem_RawFree(victims);
                    return -1;
                }
            }
            v = victims[n_out - 1];
            set_used(h, k, u + 1 - n_out);
        }
        if (pol_insert(p, b, na) < 0 || index_admitted(h, k, b) < 0) {
            PyMem_RawFree(victims);
            return -1;
        }
        if (victims != NULL) {
            for (int64_t i = 0; i < n_out - 1; i++) {
                int dst;
                if (route(h, k, victims[i], &dst) < 0 ||
                    (dst >= 0 && admit(h, dst, victims[i], next_of(h, victims[i]), k) < 0)) {
                    PyMem_RawFree(victims);
                    return -1;
                }
            }
            PyMem_RawFree(victims);
        }
        int nxt;
        if (h->write_through) {
            if (route(h, k, v, &nxt) < 0) return -1;
            if (nxt < 0) return 0;
        } else {
            nxt = h->below[k];
            int dropped = nxt < 0;
            if (!dropped && has_copies(h)) {
                dropped = other_copy(h, v);
                if (dropped < 0) return -1;
            }
            if (dropped) {
                h->drops[k]++;
                keymap_del(&h->where, v);
                if (nxt < 0 && has_copies(h) && forget(h, v) < 0) return -1;
                return drop_move(h, v, k);
            }
            h->demotions[k]++;
        }
        b = v;
        na = next_of(h, v);
        src = k;
        k = nxt;
    }
}

/* write-through: give the last tier a copy of a block that was just admitted at the top */
static int persist(Core *h, int64_t b, int64_t na) {
    PolicyRef *last = &h->pol[h->last];
    int in = pol_contains(last, b);
    if (in < 0) return -1;
    if (in) return pol_access(last, b, na);
    h->persists++;
    return admit(h, h->last, b, na, h->top);
}

/* everything but a top-tier hit (t: the tier holding b, or NONE_TIER) */
static int access_slow(Core *h, int64_t b, int64_t na, int64_t now, int t) {
    h->now = now;
    int top = h->top;
    if (t == NONE_TIER) {
        h->recomputed_blocks++;
        if (admit(h, top, b, na, -1) < 0) return -1;
        return h->write_through ? persist(h, b, na) : 0;
    }
    PolicyRef *p = &h->pol[t];
    h->hits[t]++;
    h->promotions[t]++;
    if (h->write_through && t == h->last) {
        if (pol_access(p, b, na) < 0) return -1; /* the last tier keeps its persisted copy */
    } else {
        if (pol_remove(p, b) < 0) return -1;
        h->used[t]--;
        h->change_time[t] -= now;
        keymap_del(&h->where, b);
    }
    return admit(h, top, b, na, t);
}

/* ------------------------------------------------------------------ Python methods */
static PyObject *core_access_many(Core *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "access_many(blocks, next_access=None)");
        return NULL;
    }
    PyObject *nxt_obj = nargs == 2 ? args[1] : Py_None;
    if (nxt_obj == Py_None && h->needs_future) {
        PyErr_SetString(PyExc_ValueError, "a policy needs next-access times and none were given");
        return NULL;
    }
    Keys blocks, nxt;
    if (keys_open(args[0], &blocks, "blocks must be a sequence of ints") < 0) return NULL;
    int have_next = nxt_obj != Py_None;
    if (have_next && keys_open(nxt_obj, &nxt, "next_access must be a sequence of ints") < 0) {
        keys_close(&blocks);
        return NULL;
    }
    if (have_next && nxt.n < blocks.n) {
        PyErr_SetString(PyExc_ValueError, "next_access is shorter than blocks");
        goto fail;
    }
    int top = h->top;
    int fast_admit = !h->write_through;
    PolicyRef *tp = &h->pol[top];
    int64_t base = h->accesses, n_slow = 0, n_new = 0;
    for (Py_ssize_t i = 0; i < blocks.n; i++) {
        int64_t b, na = EXO_NEVER;
        if (keys_at(&blocks, i, &b) < 0) goto fail;
        if (have_next) {
            if (keys_at(&nxt, i, &na) < 0 || keymap_put(&h->next_access, b, na) < 0) goto fail;
        }
        int t = tier_of(h, b);
        if (t == top) {
            if ((have_next ? pol_access(tp, b, na) : pol_touch(tp, b)) < 0) goto fail;
        } else if (t == NONE_TIER && fast_admit) { /* computed and admitted at the top */
            n_new++;
            h->now = base + i;
            if (admit(h, top, b, na, -1) < 0) goto fail;
        } else {
            n_slow++;
            if (access_slow(h, b, na, base + i, t) < 0) goto fail;
        }
    }
    h->hits[top] += blocks.n - n_slow - n_new;
    h->recomputed_blocks += n_new;
    h->accesses = base + blocks.n;
    h->now = h->accesses;
    keys_close(&blocks);
    if (have_next) keys_close(&nxt);
    Py_RETURN_NONE;
fail:
    keys_close(&blocks);
    if (have_next) keys_close(&nxt);
    return NULL;
}

static PyObject *core_write(Core *h, PyObject *const *args, Py_ssize_t nargs) {
    int64_t b, na;
    if (exo_parse_key_next(args, nargs, &b, &na, "write(block, next_access=NEVER)") < 0) return NULL;
    h->now = h->accesses;
    if (set_next(h, b, na) < 0) return NULL;
    int t = tier_of(h, b);
    if (t != NONE_TIER) {
        if (pol_access(&h->pol[t], b, na) < 0) return NULL;
        Py_RETURN_NONE;
    }
    h->new_blocks++;
    if (admit(h, h->top, b, na, -1) < 0) return NULL;
    if (h->write_through && persist(h, b, na) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *core_preload(Core *h, PyObject *args) {
    int k;
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "iO", &k, &seq)) return NULL;
    if (k < 0 || k >= h->n) return PyErr_Format(PyExc_IndexError, "tier %d out of range", k);
    if (h->pol[k].obj == NULL) return PySequence_List(seq);
    Keys blocks;
    if (keys_open(seq, &blocks, "blocks must be a sequence of ints") < 0) return NULL;
    PyObject *left = PyList_New(0);
    if (left == NULL) goto fail;
    PolicyRef *p = &h->pol[k];
    for (Py_ssize_t i = 0; i < blocks.n; i++) {
        int64_t b;
        if (keys_at(&blocks, i, &b) < 0) goto fail;
        int in = keymap_get(&h->where, b) != NULL;
        if (!in) {
            in = pol_contains(p, b);
            if (in < 0) goto fail;
        }
        if (in || h->used[k] >= h->high[k]) {
            PyObject *o = PyLong_FromLongLong(b);
            if (o == NULL || PyList_Append(left, o) < 0) {
                Py_XDECREF(o);
                goto fail;
            }
            Py_DECREF(o);
            continue;
        }
        if (pol_has_prepare(p) && pol_prepare(p, b) < 0) goto fail;
        if (pol_insert(p, b, next_of(h, b)) < 0) goto fail;
        set_used(h, k, h->used[k] + 1);
        if (keymap_put(&h->where, b, k) < 0) goto fail;
    }
    keys_close(&blocks);
    return left;
fail:
    keys_close(&blocks);
    Py_XDECREF(left);
    return NULL;
}

/* the copy of block b a lookup uses: 1 with (*key, *tier), 0 if it is not resident, -1 on error */
static int find(Core *h, int64_t b, int64_t *key, int *tier) {
    if (has_copies(h)) {
        PyObject *bkey;
        PyObject *keys = copies_of(h, b, &bkey);
        Py_XDECREF(bkey);
        if (keys == NULL && PyErr_Occurred()) return -1;
        if (keys != NULL && PyList_GET_SIZE(keys) > 0) {
            if (exo_as_key(PyList_GET_ITEM(keys, 0), key) < 0) return -1;
            *tier = tier_of(h, *key);
            if (*tier == NONE_TIER) {
                PyErr_Format(PyExc_KeyError, "%lld", (long long)*key);
                return -1;
            }
            return 1;
        }
    }
    *tier = tier_of(h, b);
    *key = b;
    return *tier != NONE_TIER;
}

static PyObject *core_find(Core *h, PyObject *arg) {
    int64_t b, key;
    int tier;
    if (exo_as_key(arg, &b) < 0) return NULL;
    int rc = find(h, b, &key, &tier);
    if (rc < 0) return NULL;
    if (rc == 0) Py_RETURN_NONE;
    return Py_BuildValue("(Li)", (long long)key, tier);
}

static PyObject *core_use(Core *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "use(key, tier, next_access=NEVER)");
        return NULL;
    }
    int64_t key, na = EXO_NEVER;
    if (exo_as_key(args[0], &key) < 0) return NULL;
    long tier = PyLong_AsLong(args[1]);
    if (tier == -1 && PyErr_Occurred()) return NULL;
    if (tier < 0 || tier >= h->n || h->pol[tier].obj == NULL)
        return PyErr_Format(PyExc_ValueError, "tier %ld holds nothing", tier);
    if (nargs == 3) {
        long long v = PyLong_AsLongLong(args[2]);
        if (v == -1 && PyErr_Occurred()) return NULL;
        na = v;
    }
    h->now = h->accesses;
    if (set_next(h, key, na) < 0) return NULL;
    if (tier == h->top) {
        h->hits[tier]++;
        if (pol_access(&h->pol[tier], key, na) < 0) return NULL;
    } else if (access_slow(h, key, na, h->accesses, (int)tier) < 0) {
        return NULL;
    }
    h->accesses++;
    if (pin(h, key) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *core_compute(Core *h, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"b", "next_access", "cacheable", "read", NULL};
    long long b_ll, na_ll = EXO_NEVER;
    int cacheable = 1, read = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L|Lpp", kwlist, &b_ll, &na_ll, &cacheable, &read)) return NULL;
    int64_t b = b_ll, na = na_ll;
    h->now = h->accesses;
    int64_t old_key = 0;
    int t = NONE_TIER, found = 0;
    if (cacheable) {
        found = find(h, b, &old_key, &t);
        if (found < 0) return NULL;
    }
    if (!read) {
        if (found) { /* refreshed in place */
            if (pol_access(&h->pol[t], old_key, na) < 0 || pin(h, old_key) < 0) return NULL;
            Py_RETURN_NONE;
        }
        h->new_blocks++;
    } else {
        h->accesses++;
        h->recomputed_blocks++;
    }
    int64_t key = b;
    if (found || !cacheable) {
        key = h->next_key--;
        PyObject *k = PyLong_FromLongLong(key);
        if (k == NULL) return NULL;
        if (cacheable) {
            if (read) h->stranded[t]++;
            PyObject *bkey;
            PyObject *keys = copies_of(h, b, &bkey);
            int rc;
            if (keys == NULL && (PyErr_Occurred() || bkey == NULL)) {
                rc = -1;
            } else if (keys == NULL) {
                PyObject *lst = Py_BuildValue("[LO]", (long long)old_key, k);
                rc = lst == NULL ? -1 : PyDict_SetItem(h->copies, bkey, lst);
                Py_XDECREF(lst);
            } else {
                rc = PyList_Append(keys, k);
            }
            if (rc == 0) rc = PyDict_SetItem(h->owner, k, bkey);
            Py_XDECREF(bkey);
            if (rc < 0) {
                Py_DECREF(k);
                return NULL;
            }
        } else if (PySet_Add(h->transient, k) < 0) {
            Py_DECREF(k);
            return NULL;
        }
        Py_DECREF(k);
    }
    if (set_next(h, key, na) < 0) return NULL;
    if (admit(h, h->top, key, na, -1) < 0) return NULL;
    if (h->write_through && cacheable && !found && persist(h, key, na) < 0) return NULL;
    if (pin(h, key) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *core_end_request(Core *h, PyObject *Py_UNUSED(ignored)) {
    int top = h->top;
    PolicyRef *p = &h->pol[top];
    int release = pol_has_release(p);
    int any_transient = PySet_GET_SIZE(h->transient) != 0;
    for (size_t i = h->n_pinned; i-- > 0;) {
        int64_t key = h->pinned[i];
        int is_transient = 0;
        PyObject *k = NULL;
        if (any_transient) {
            k = PyLong_FromLongLong(key);
            if (k == NULL) return NULL;
            is_transient = PySet_Contains(h->transient, k);
            if (is_transient < 0) goto fail;
        }
        if (is_transient) {
            if (PySet_Discard(h->transient, k) < 0) goto fail;
            if (tier_of(h, key) == top) {
                if (pol_remove(p, key) < 0) goto fail;
                keymap_del(&h->where, key);
                set_used(h, top, h->used[top] - 1);
            }
        } else if (release && tier_of(h, key) == top) {
            if (pol_release(p, key) < 0) goto fail;
        }
        Py_XDECREF(k);
        continue;
    fail:
        Py_XDECREF(k);
        return NULL;
    }
    for (size_t i = 0; i < h->n_pinned; i++) keymap_del(&h->pinned_set, h->pinned[i]);
    h->n_pinned = 0;
    Py_RETURN_NONE;
}

static int check_tier(Core *h, long k) {
    if (k < 0 || k >= h->n) {
        PyErr_Format(PyExc_IndexError, "tier %ld out of range", k);
        return -1;
    }
    return 0;
}

static PyObject *core_holds(Core *h, PyObject *args) {
    long k;
    PyObject *key_obj;
    if (!PyArg_ParseTuple(args, "lO", &k, &key_obj) || check_tier(h, k) < 0) return NULL;
    if (h->pol[k].obj == NULL) Py_RETURN_FALSE;
    int64_t key;
    if (exo_as_key(key_obj, &key) < 0) return NULL;
    int rc = pol_contains(&h->pol[k], key);
    if (rc < 0) return NULL;
    return PyBool_FromLong(rc);
}

static PyObject *core_held(Core *h, PyObject *arg) {
    long k = PyLong_AsLong(arg);
    if ((k == -1 && PyErr_Occurred()) || check_tier(h, k) < 0) return NULL;
    if (h->pol[k].obj == NULL) return PyLong_FromLong(0);
    Py_ssize_t n = pol_len(&h->pol[k]);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *core_tier_of(Core *h, PyObject *arg) {
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    int t = tier_of(h, v);
    if (t == NONE_TIER) Py_RETURN_NONE;
    return PyLong_FromLong(t);
}

static PyObject *core_where_dict(Core *h, PyObject *Py_UNUSED(ignored)) {
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    for (size_t i = 0; h->where.slots != NULL && i <= h->where.mask; i++) {
        KeySlot *s = &h->where.slots[i];
        if (s->key == EXO_EMPTY) continue;
        PyObject *k = PyLong_FromLongLong(s->key), *v = PyLong_FromLongLong(s->value);
        if (k == NULL || v == NULL || PyDict_SetItem(d, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    return d;
}

static PyObject *core_where_len(Core *h, PyObject *Py_UNUSED(ignored)) { return PyLong_FromSize_t(h->where.size); }

static PyObject *core_nbytes(Core *h, PyObject *Py_UNUSED(ignored)) {
    size_t n = keymap_bytes(&h->where) + keymap_bytes(&h->next_access) + keymap_bytes(&h->pinned_set);
    return PyLong_FromSize_t(n);
}

static PyObject *int_list(const int64_t *a, int n) {
    PyObject *l = PyList_New(n);
    if (l == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(a[i]);
        if (v == NULL) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, v);
    }
    return l;
}

/* One flow of take_flows: out[(src, dst)] += count, src / dst -1 for None. */
static int add_flow(PyObject *out, int src, int dst, int64_t count) {
    PyObject *a = src < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(src);
    PyObject *b = dst < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(dst);
    PyObject *key = (a != NULL && b != NULL) ? PyTuple_Pack(2, a, b) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(b);
    if (key == NULL) return -1;
    PyObject *was = PyDict_GetItemWithError(out, key);
    PyObject *v = NULL;
    if (was != NULL) {
        long long w = PyLong_AsLongLong(was);
        if (!(w == -1 && PyErr_Occurred())) v = PyLong_FromLongLong(w + count);
    } else if (!PyErr_Occurred()) {
        v = PyLong_FromLongLong(count);
    }
    int rc = v == NULL ? -1 : PyDict_SetItem(out, key, v);
    Py_XDECREF(v);
    Py_DECREF(key);
    return rc;
}

static PyObject *core_take_flows(Core *h, PyObject *Py_UNUSED(ignored)) {
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    int n = h->n;
    int64_t *mark = h->flow_mark;
    for (int t = 0; t < n; t++) {
        int64_t dp = h->promotions[t] - mark[t], dd = h->demotions[t] - mark[n + t], dx = h->drops[t] - mark[2 * n + t];
        if (dp && add_flow(out, t, h->top, dp) < 0) goto fail;
        if (dd && add_flow(out, t, h->below[t], dd) < 0) goto fail;
        if (dx && add_flow(out, t, -1, dx) < 0) goto fail;
        mark[t] = h->promotions[t];
        mark[n + t] = h->demotions[t];
        mark[2 * n + t] = h->drops[t];
    }
    int64_t computed = h->recomputed_blocks + h->new_blocks;
    if (computed != mark[3 * n] && add_flow(out, -1, h->top, computed - mark[3 * n]) < 0) goto fail;
    if (h->persists != mark[3 * n + 1] && add_flow(out, h->top, h->last, h->persists - mark[3 * n + 1]) < 0) goto fail;
    mark[3 * n] = computed;
    mark[3 * n + 1] = h->persists;
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------ construction */
static int core_init(Core *h, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"policies", "high", "evict_to", "block_bytes", "write_through", "record_moves",
                             "move_type", NULL};
    PyObject *policies, *high, *evict_to, *bytes, *move_type;
    int wt, rec;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOppO", kwlist, &policies, &high, &evict_to, &bytes, &wt, &rec,
                                     &move_type))
        return -1;
    if (h->pol != NULL) {
        PyErr_SetString(PyExc_TypeError, "the core is initialised once");
        return -1;
    }
    PyObject *pl = PySequence_List(policies);
    if (pl == NULL) return -1;
    int n = (int)PyList_GET_SIZE(pl);
    if (n < 1 || PySequence_Size(high) != n || PySequence_Size(evict_to) != n || PySequence_Size(bytes) != n) {
        Py_DECREF(pl);
        PyErr_SetString(PyExc_ValueError, "policies, high, evict_to and block_bytes must name the same tiers");
        return -1;
    }
    h->policies = pl;
    h->n = n;
    h->pol = PyMem_Calloc(n, sizeof(PolicyRef));
    h->below = PyMem_Calloc(n, sizeof(int));
    int64_t **arrays[] = {&h->high, &h->evict_to, &h->bytes, &h->used, &h->peak, &h->hits, &h->promotions,
                          &h->demotions, &h->drops, &h->stranded, &h->change_time};
    for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++) {
        *arrays[i] = PyMem_Calloc(n, sizeof(int64_t));
        if (*arrays[i] == NULL) return PyErr_NoMemory(), -1;
    }
    h->flow_mark = PyMem_Calloc(3 * (size_t)n + 2, sizeof(int64_t));
    if (h->pol == NULL || h->below == NULL || h->flow_mark == NULL) return PyErr_NoMemory(), -1;
    PyObject *seqs[] = {high, evict_to, bytes};
    int64_t *dst[] = {h->high, h->evict_to, h->bytes};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < n; i++) {
            PyObject *item = PySequence_GetItem(seqs[s], i);
            if (item == NULL) return -1;
            long long v = PyLong_AsLongLong(item);
            Py_DECREF(item);
            if (v == -1 && PyErr_Occurred()) return -1;
            dst[s][i] = v;
        }
    }
    h->top = h->last = -1;
    h->needs_future = 0;
    for (int i = 0; i < n; i++) {
        PyObject *o = PyList_GET_ITEM(pl, i);
        if (o == Py_None) continue;
        if (policyref_init(&h->pol[i], o) < 0) return -1;
        if (h->top < 0) h->top = i;
        h->last = i;
        PyObject *nf = PyObject_GetAttrString(o, "needs_future");
        if (nf == NULL) return -1;
        int t = PyObject_IsTrue(nf);
        Py_DECREF(nf);
        if (t < 0) return -1;
        h->needs_future |= t;
    }
    if (h->top < 0) {
        PyErr_SetString(PyExc_ValueError, "no usable tier");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        h->below[i] = -1;
        for (int j = i + 1; j < n; j++) {
            if (h->pol[j].obj != NULL) {
                h->below[i] = j;
                break;
            }
        }
    }
    h->write_through = wt && h->last != h->top;
    h->record_moves = rec;
    h->moves = PyList_New(0);
    h->copies = PyDict_New();
    h->owner = PyDict_New();
    h->transient = PySet_New(NULL);
    if (h->moves == NULL || h->copies == NULL || h->owner == NULL || h->transient == NULL) return -1;
    Py_INCREF(move_type);
    h->move_type = move_type;
    h->next_key = -1;
    if (keymap_init(&h->where, 0) < 0 || keymap_init(&h->next_access, 0) < 0 || keymap_init(&h->pinned_set, 0) < 0)
        return -1;
    return 0;
}

static int core_traverse(Core *h, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(h));
    Py_VISIT(h->policies);
    Py_VISIT(h->moves);
    Py_VISIT(h->move_type);
    Py_VISIT(h->copies);
    Py_VISIT(h->owner);
    Py_VISIT(h->transient);
    for (int i = 0; h->pol != NULL && i < h->n; i++) {
        PolicyRef *r = &h->pol[i];
        Py_VISIT(r->obj);
        Py_VISIT(r->insert);
        Py_VISIT(r->access);
        Py_VISIT(r->touch);
        Py_VISIT(r->release);
        Py_VISIT(r->prepare);
        Py_VISIT(r->remove);
        Py_VISIT(r->victim);
    }
    return 0;
}

static int core_clear(Core *h) {
    Py_CLEAR(h->policies);
    Py_CLEAR(h->moves);
    Py_CLEAR(h->move_type);
    Py_CLEAR(h->copies);
    Py_CLEAR(h->owner);
    Py_CLEAR(h->transient);
    for (int i = 0; h->pol != NULL && i < h->n; i++) policyref_clear(&h->pol[i]);
    return 0;
}

static void core_dealloc(Core *h) {
    PyTypeObject *tp = Py_TYPE(h);
    PyObject_GC_UnTrack(h);
    core_clear(h);
    PyMem_Free(h->pol);
    PyMem_Free(h->below);
    PyMem_Free(h->flow_mark);
    int64_t *arrays[] = {h->high, h->evict_to, h->bytes, h->used, h->peak, h->hits, h->promotions,
                         h->demotions, h->drops, h->stranded, h->change_time};
    for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++) PyMem_Free(arrays[i]);
    keymap_free(&h->where);
    keymap_free(&h->next_access);
    keymap_free(&h->pinned_set);
    PyMem_RawFree(h->pinned);
    tp->tp_free((PyObject *)h);
    Py_DECREF(tp);
}

/* ------------------------------------------------------------------ attributes */
#define INT_ARRAY_GETTER(name, field)                                                       \
    static PyObject *get_##name(Core *h, void *Py_UNUSED(c)) { return int_list(h->field, h->n); }
INT_ARRAY_GETTER(used, used)
INT_ARRAY_GETTER(peak, peak)
INT_ARRAY_GETTER(hits, hits)
INT_ARRAY_GETTER(promotions, promotions)
INT_ARRAY_GETTER(demotions, demotions)
INT_ARRAY_GETTER(drops, drops)
INT_ARRAY_GETTER(stranded, stranded)
INT_ARRAY_GETTER(change_time, change_time)
INT_ARRAY_GETTER(high, high)
INT_ARRAY_GETTER(evict_to, evict_to)
INT_ARRAY_GETTER(bytes, bytes)

static PyObject *get_below(Core *h, void *Py_UNUSED(c)) {
    PyObject *l = PyList_New(h->n);
    if (l == NULL) return NULL;
    for (int i = 0; i < h->n; i++) {
        PyObject *v = h->below[i] < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(h->below[i]);
        if (v == NULL) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, v);
    }
    return l;
}

static PyObject *get_pinned(Core *h, void *Py_UNUSED(c)) {
    PyObject *l = PyList_New((Py_ssize_t)h->n_pinned);
    if (l == NULL) return NULL;
    for (size_t i = 0; i < h->n_pinned; i++) {
        PyObject *v = PyLong_FromLongLong(h->pinned[i]);
        if (v == NULL) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, v);
    }
    return l;
}

static PyObject *get_pinned_set(Core *h, void *Py_UNUSED(c)) {
    PyObject *s = PySet_New(NULL);
    for (size_t i = 0; s != NULL && h->pinned_set.slots != NULL && i <= h->pinned_set.mask; i++) {
        if (h->pinned_set.slots[i].key == EXO_EMPTY) continue;
        PyObject *v = PyLong_FromLongLong(h->pinned_set.slots[i].key);
        if (v == NULL || PySet_Add(s, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(s);
            return NULL;
        }
        Py_DECREF(v);
    }
    return s;
}

#define SCALAR_GETTER(name)                                                                 \
    static PyObject *get_##name(Core *h, void *Py_UNUSED(c)) { return PyLong_FromLongLong(h->name); }
SCALAR_GETTER(accesses)
SCALAR_GETTER(new_blocks)
SCALAR_GETTER(recomputed_blocks)
SCALAR_GETTER(persists)
SCALAR_GETTER(now)
SCALAR_GETTER(top)
SCALAR_GETTER(last)
SCALAR_GETTER(n)

static PyObject *get_bool(int v) { return PyBool_FromLong(v); }
static PyObject *get_write_through(Core *h, void *Py_UNUSED(c)) { return get_bool(h->write_through); }
static PyObject *get_needs_future(Core *h, void *Py_UNUSED(c)) { return get_bool(h->needs_future); }
static PyObject *get_record_moves(Core *h, void *Py_UNUSED(c)) { return get_bool(h->record_moves); }
static PyObject *get_obj(PyObject *o) { return Py_NewRef(o); }
static PyObject *get_policies(Core *h, void *Py_UNUSED(c)) { return get_obj(h->policies); }
static PyObject *get_moves(Core *h, void *Py_UNUSED(c)) { return get_obj(h->moves); }
static PyObject *get_copies(Core *h, void *Py_UNUSED(c)) { return get_obj(h->copies); }
static PyObject *get_owner(Core *h, void *Py_UNUSED(c)) { return get_obj(h->owner); }
static PyObject *get_transient(Core *h, void *Py_UNUSED(c)) { return get_obj(h->transient); }

#define G(name, doc) {#name, (getter)get_##name, NULL, doc, NULL}
static PyGetSetDef core_getset[] = {
    G(used, "Blocks each tier holds now."),
    G(peak, "The most blocks each tier has held."),
    G(hits, "Hits per tier."),
    G(promotions, "Blocks promoted out of each tier."),
    G(demotions, "Victims of each tier demoted to the next usable tier."),
    G(drops, "Victims of each tier dropped."),
    G(stranded, "Blocks recomputed while a copy was resident in each tier."),
    {"_change_time", (getter)get_change_time, NULL, "Occupancy bookkeeping (sum of delta x when).", NULL},
    {"_high", (getter)get_high, NULL, "Each tier's high watermark in blocks.", NULL},
    {"_evict_to", (getter)get_evict_to, NULL, "Each tier's eviction target minus one.", NULL},
    {"_bytes", (getter)get_bytes, NULL, "Each tier's block size in bytes.", NULL},
    {"_below", (getter)get_below, NULL, "The next usable tier below each tier (None below the last).", NULL},
    {"_pinned", (getter)get_pinned, NULL, "Keys pinned by the request in flight, in order.", NULL},
    {"_pinned_set", (getter)get_pinned_set, NULL, "Keys pinned by the request in flight.", NULL},
    {"_copies", (getter)get_copies, NULL, "Copy lists of blocks with several copies.", NULL},
    {"_owner", (getter)get_owner, NULL, "The block each extra copy's key belongs to.", NULL},
    {"_transient", (getter)get_transient, NULL, "Keys of uncacheable blocks held by the request in flight.", NULL},
    G(accesses, "Block reads so far."),
    G(new_blocks, "Blocks written as output so far."),
    G(recomputed_blocks, "Blocks read and computed (missed everywhere) so far."),
    G(persists, "Write-through copies made so far."),
    G(now, "The access index of the decision in progress."),
    G(top, "The top usable tier."),
    G(last, "The last usable tier."),
    {"n_tiers", (getter)get_n, NULL, "Number of tiers (usable or bypassed).", NULL},
    G(write_through, "Whether the last tier keeps a copy of every block."),
    G(needs_future, "Whether a policy reads next-access times."),
    G(record_moves, "Whether every move is appended to moves."),
    G(policies, "Each tier's policy (None at bypassed tiers)."),
    G(moves, "Every move so far, when record_moves is on."),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef core_methods[] = {
    {"access_many", (PyCFunction)(void (*)(void))core_access_many, METH_FASTCALL,
     "Read each block of ``blocks`` in order (``next_access[i]``: its next read, needed by Belady)."},
    {"write", (PyCFunction)(void (*)(void))core_write, METH_FASTCALL,
     "A request appends a new block (its own output): admit it to the top tier, no miss counted."},
    {"preload", (PyCFunction)core_preload, METH_VARARGS,
     "Place blocks an earlier run left in tier k, oldest first; return those not placed."},
    {"find", (PyCFunction)core_find, METH_O, "The copy of block b a lookup uses, as (key, tier), or None."},
    {"use", (PyCFunction)(void (*)(void))core_use, METH_FASTCALL,
     "Serve one block of the cached prefix from the copy key in tier (a hit there)."},
    {"compute", (PyCFunction)(void (*)(void))core_compute, METH_VARARGS | METH_KEYWORDS,
     "Prefill block b (read) or write it as output (read=False) and admit it to the top tier."},
    {"take_flows", (PyCFunction)core_take_flows, METH_NOARGS,
     "Moves since the last call (or since the core was made), counted by (src, dst); None for computed / dropped."},
    {"end_request", (PyCFunction)core_end_request, METH_NOARGS,
     "The request in flight finished: release its blocks tail-first and free its uncacheable ones."},
    {"holds", (PyCFunction)core_holds, METH_VARARGS, "Whether tier k holds key now."},
    {"held", (PyCFunction)core_held, METH_O, "How many keys tier k holds now."},
    {"tier_of", (PyCFunction)core_tier_of, METH_O, "The tier indexed for key, or None."},
    {"where_dict", (PyCFunction)core_where_dict, METH_NOARGS, "The block index as a dict (a snapshot)."},
    {"where_len", (PyCFunction)core_where_len, METH_NOARGS, "How many keys the block index holds."},
    {"nbytes", (PyCFunction)core_nbytes, METH_NOARGS, "Bytes of memory the core's own indexes hold."},
    {NULL, NULL, 0, NULL},
};

static PyObject *core_new(PyTypeObject *type, PyObject *Py_UNUSED(a), PyObject *Py_UNUSED(k)) {
    Core *h = (Core *)type->tp_alloc(type, 0); /* zeroed */
    return (PyObject *)h;
}

static PyType_Slot core_slots[] = {
    {Py_tp_doc, "The decision core over a hierarchy's tiers (see exo_sim.hierarchy.Hierarchy)."},
    {Py_tp_new, core_new},
    {Py_tp_init, core_init},
    {Py_tp_dealloc, core_dealloc},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {Py_tp_methods, core_methods},
    {Py_tp_getset, core_getset},
    {0, NULL},
};

static PyType_Spec core_spec = {
    "exo_sim._core.HierarchyCore", sizeof(Core), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, core_slots,
};

int exo_hierarchy_add_type(PyObject *module) {
    PyObject *t = PyType_FromModuleAndSpec(module, &core_spec, NULL);
    if (t == NULL) return -1;
    if (PyModule_AddObject(module, "HierarchyCore", t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}
