/* exo's compiled decision core: shared declarations.
 *
 * keymap.c   an int64 -> int64 hash map (open addressing, linear probing, backward-shift deletion)
 * policy.c   the policy protocol: native policies (a C vtable) and policies written in Python, and
 *            what every native policy shares (capacity_blocks parsing, the KeyError, the dealloc tail)
 * nodes.c    the node pool and lists of the list-based policies (nodes.h), and node-array growth
 * queue.c    the queue policies, LRU and FIFO
 * hierarchy.c the tiers and the cascade (find -> promote/admit -> evict-until-it-fits -> insert)
 * module.c   the module exo_sim._core
 */
#ifndef EXO_CORE_H
#define EXO_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define EXO_NEVER ((int64_t)PY_SSIZE_T_MAX) /* sys.maxsize: "not referenced again" */
#define EXO_EMPTY INT64_MIN                  /* a free slot of a KeyMap; never a key */

/* ------------------------------------------------------------------ KeyMap */
typedef struct {
    int64_t key;
    int64_t value;
} KeySlot;

typedef struct {
    KeySlot *slots;
    size_t mask; /* capacity - 1 (capacity a power of two), 0 when unallocated */
    size_t size;
} KeyMap;

int keymap_init(KeyMap *m, size_t expected);
void keymap_free(KeyMap *m);
void keymap_clear(KeyMap *m);
/* pointer to the value of key, or NULL */
int64_t *keymap_get(const KeyMap *m, int64_t key);
/* set key to value; -1 on memory error (exception set) */
int keymap_put(KeyMap *m, int64_t key, int64_t value);
/* remove key; 1 if it was there, 0 if not */
int keymap_del(KeyMap *m, int64_t key);
/* bytes the map holds */
size_t keymap_bytes(const KeyMap *m);

/* ------------------------------------------------------------------ policies */
typedef struct ExoPolicyVT {
    int (*insert)(PyObject *self, int64_t key, int64_t next);
    int (*access)(PyObject *self, int64_t key, int64_t next);
    int (*touch)(PyObject *self, int64_t key);          /* NULL: a hit changes nothing */
    int (*release)(PyObject *self, int64_t key);        /* NULL: no release hook */
    int (*prepare_insert)(PyObject *self, int64_t key); /* NULL: no hook */
    int (*remove)(PyObject *self, int64_t key);         /* -1 + KeyError if absent */
    int (*victim)(PyObject *self, int64_t *out);        /* -1 + KeyError if empty */
    int (*contains)(PyObject *self, int64_t key);
    Py_ssize_t (*len)(PyObject *self);
    int (*verify)(PyObject *self); /* -1 with the exception set when broken; may be NULL */
    size_t (*nbytes)(PyObject *self);
} ExoPolicyVT;

/* Every native policy object starts with this. */
typedef struct {
    PyObject_HEAD
    const ExoPolicyVT *vt;
    int64_t capacity;
} ExoPolicy;

extern PyTypeObject *ExoPolicy_Type; /* the native base type */
int exo_policy_add_base(PyObject *module);
/* Create a heap type for a native policy: its slots and methods come from the base. */
PyTypeObject *exo_policy_make_type(PyObject *module, const char *qualname, const char *doc, size_t basicsize,
                                   initproc init, destructor dealloc, PyMethodDef *extra_methods);
/* Raise PolicyInvariantError (exo_sim.policies.base) with a message. */
void exo_policy_invariant(const char *fmt, ...);
/* The common part of every native policy's __init__: parse ``capacity_blocks`` (> 0) into the base and
 * refuse a second initialisation. 0, or -1 with the exception set; the caller sets the vtable last. */
int exo_policy_init_capacity(PyObject *self, PyObject *args, PyObject *kwds);
/* The common tail of a native policy's dealloc (after it freed its own memory): free the object and
 * drop the reference it held on its heap type. */
void exo_policy_dealloc(PyObject *self);
/* Raise KeyError(key); returns -1. */
int exo_key_error(int64_t key);

/* A tier's policy as the hierarchy calls it: native (vt set) or a Python object (bound methods). */
typedef struct {
    PyObject *obj;
    const ExoPolicyVT *vt;
    PyObject *insert, *access, *touch, *release, *prepare, *remove, *victim;
} PolicyRef;

int policyref_init(PolicyRef *r, PyObject *obj);
void policyref_clear(PolicyRef *r);
int pol_insert(PolicyRef *r, int64_t key, int64_t next);
int pol_access(PolicyRef *r, int64_t key, int64_t next);
int pol_touch(PolicyRef *r, int64_t key);
int pol_has_release(const PolicyRef *r);
int pol_release(PolicyRef *r, int64_t key);
int pol_has_prepare(const PolicyRef *r);
int pol_prepare(PolicyRef *r, int64_t key);
int pol_remove(PolicyRef *r, int64_t key);
int pol_victim(PolicyRef *r, int64_t *out);
int pol_contains(PolicyRef *r, int64_t key); /* -1 on error */
Py_ssize_t pol_len(PolicyRef *r);

/* helpers */
int exo_as_key(PyObject *o, int64_t *out); /* Python int -> int64; -1 with an exception */
/* (key, next_access=NEVER) of a fastcall; TypeError naming sig on a wrong count */
int exo_parse_key_next(PyObject *const *args, Py_ssize_t nargs, int64_t *key, int64_t *next, const char *sig);

/* keys.c: a sequence of int64 keys read from Python, in place when it is a 1-D int64 buffer (a numpy
 * array, array('q')), else through PySequence_Fast. keys_open -> keys_at(i) for i < n -> keys_close. */
typedef struct {
    Py_buffer view;
    PyObject *fast;
    const int64_t *data;
    Py_ssize_t n;
} Keys;
int keys_open(PyObject *o, Keys *k, const char *what); /* -1 with a TypeError naming what */
void keys_close(Keys *k);
/* item i as int64; -1 with an exception (not an int, out of range, or the reserved key -2**63) */
static inline int keys_at(Keys *k, Py_ssize_t i, int64_t *out) {
    if (k->data == NULL) return exo_as_key(PySequence_Fast_GET_ITEM(k->fast, i), out);
    if (k->data[i] == EXO_EMPTY) {
        PyErr_SetString(PyExc_OverflowError, "block key -2**63 is reserved");
        return -1;
    }
    *out = k->data[i];
    return 0;
}

int exo_queue_add_types(PyObject *module);
int exo_hierarchy_add_type(PyObject *module);
int exo_keyset_add_type(PyObject *module);
int exo_arc_add_type(PyObject *module);
int exo_lfu_add_type(PyObject *module);
int exo_belady_add_type(PyObject *module);
int exo_sieve_add_type(PyObject *module);  /* sieve.c (list nodes: nodes.h) */
int exo_s3fifo_add_type(PyObject *module); /* s3fifo.c */

#endif
