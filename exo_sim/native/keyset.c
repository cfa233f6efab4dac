/* exo_sim._core.KeySet: a set of int64 keys on a KeyMap (16 bytes a slot, no Python object per key).
 * The driver keeps the blocks it has seen in one, to tell a first prefill from a recomputation. */
#include "core.h"

typedef struct {
    PyObject_HEAD
    KeyMap map;
} KeySet;

static int ks_init(KeySet *s, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "", kwlist)) return -1;
    if (s->map.slots != NULL) keymap_free(&s->map);
    return keymap_init(&s->map, 0);
}

static void ks_dealloc(KeySet *s) {
    PyTypeObject *tp = Py_TYPE(s);
    keymap_free(&s->map);
    tp->tp_free((PyObject *)s);
    Py_DECREF(tp);
}

static PyObject *ks_add(KeySet *s, PyObject *arg) {
    int64_t key;
    if (exo_as_key(arg, &key) < 0) return NULL;
    if (keymap_get(&s->map, key) != NULL) Py_RETURN_FALSE;
    if (keymap_put(&s->map, key, 0) < 0) return NULL;
    Py_RETURN_TRUE;
}

static PyObject *ks_update(KeySet *s, PyObject *arg) {
    Keys keys;
    if (keys_open(arg, &keys, "update() takes a sequence of ints") < 0) return NULL;
    Py_ssize_t added = 0;
    for (Py_ssize_t i = 0; i < keys.n; i++) {
        int64_t key;
        if (keys_at(&keys, i, &key) < 0) goto fail;
        if (keymap_get(&s->map, key) != NULL) continue;
        if (keymap_put(&s->map, key, 0) < 0) goto fail;
        added++;
    }
    keys_close(&keys);
    return PyLong_FromSsize_t(added);
fail:
    keys_close(&keys);
    return NULL;
}

static PyObject *ks_nbytes(KeySet *s, PyObject *Py_UNUSED(ignored)) { return PyLong_FromSize_t(keymap_bytes(&s->map)); }

static Py_ssize_t ks_len(KeySet *s) { return (Py_ssize_t)s->map.size; }

static int ks_contains(KeySet *s, PyObject *arg) {
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return keymap_get(&s->map, v) != NULL;
}

static PyMethodDef ks_methods[] = {
    {"add", (PyCFunction)ks_add, METH_O, "Add a key; return whether it was new."},
    {"update", (PyCFunction)ks_update, METH_O, "Add every key of a sequence (or int64 array); return how many were new."},
    {"nbytes", (PyCFunction)ks_nbytes, METH_NOARGS, "Bytes of memory the set holds."},
    {NULL, NULL, 0, NULL},
};

static PyObject *ks_new(PyTypeObject *type, PyObject *Py_UNUSED(a), PyObject *Py_UNUSED(k)) {
    return type->tp_alloc(type, 0);
}

static PyType_Slot ks_slots[] = {
    {Py_tp_doc, "A set of int64 keys (16 bytes a slot; no Python object per key)."},
    {Py_tp_new, ks_new},
    {Py_tp_init, ks_init},
    {Py_tp_dealloc, ks_dealloc},
    {Py_tp_methods, ks_methods},
    {Py_sq_length, ks_len},
    {Py_sq_contains, ks_contains},
    {0, NULL},
};

static PyType_Spec ks_spec = {"exo_sim._core.KeySet", sizeof(KeySet), 0, Py_TPFLAGS_DEFAULT, ks_slots};

int exo_keyset_add_type(PyObject *module) {
    PyObject *t = PyType_FromModuleAndSpec(module, &ks_spec, NULL);
    if (t == NULL) return -1;
    if (PyModule_AddObject(module, "KeySet", t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}
