/* The policy protocol as the hierarchy calls it, for native policies and for policies written in
 * Python (a user's, registered like any other: the hierarchy calls its bound methods, a slower path).
 *
 * Native policies share one base type, ``exo_sim._core.NativePolicy``, whose Python methods
 * (insert, access, remove, victim, len, in, verify, touch, release, prepare_insert) call the C
 * vtable: so a test that drives a policy from Python drives the very code the hierarchy runs. */
#include "core.h"

#include <stdarg.h>
#include <string.h>

PyTypeObject *ExoPolicy_Type = NULL;

int exo_as_key(PyObject *o, int64_t *out) {
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v == (long long)EXO_EMPTY) {
        PyErr_SetString(PyExc_OverflowError, "block key -2**63 is reserved");
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

void exo_policy_invariant(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (msg == NULL) return;
    PyObject *mod = PyImport_ImportModule("exo_sim.policies.base");
    PyObject *exc = mod == NULL ? NULL : PyObject_GetAttrString(mod, "PolicyInvariantError");
    Py_XDECREF(mod);
    if (exc != NULL) {
        PyErr_SetObject(exc, msg);
        Py_DECREF(exc);
    }
    Py_DECREF(msg);
}

int exo_policy_init_capacity(PyObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"capacity_blocks", NULL};
    long long cap;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L", kwlist, &cap)) return -1;
    if (cap <= 0) {
        PyErr_SetString(PyExc_ValueError, "capacity_blocks must be > 0");
        return -1;
    }
    ExoPolicy *p = (ExoPolicy *)self;
    if (p->vt != NULL) {
        PyErr_SetString(PyExc_TypeError, "a policy is initialised once");
        return -1;
    }
    p->capacity = cap;
    return 0;
}

void exo_policy_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

int exo_key_error(int64_t key) {
    PyObject *k = PyLong_FromLongLong(key);
    if (k != NULL) {
        PyErr_SetObject(PyExc_KeyError, k);
        Py_DECREF(k);
    }
    return -1;
}

/* ------------------------------------------------------------------ the native base type */
static const ExoPolicyVT *vt_of(PyObject *self) {
    const ExoPolicyVT *vt = ((ExoPolicy *)self)->vt;
    if (vt == NULL) PyErr_SetString(PyExc_TypeError, "policy object was not initialised");
    return vt;
}

int exo_parse_key_next(PyObject *const *args, Py_ssize_t nargs, int64_t *key, int64_t *next, const char *sig) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, sig);
        return -1;
    }
    if (exo_as_key(args[0], key) < 0) return -1;
    *next = EXO_NEVER;
    if (nargs == 2) {
        long long v = PyLong_AsLongLong(args[1]);
        if (v == -1 && PyErr_Occurred()) return -1;
        *next = (int64_t)v;
    }
    return 0;
}

static PyObject *np_insert(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    int64_t key, next;
    const ExoPolicyVT *vt = vt_of(self);
    if (vt == NULL || exo_parse_key_next(args, nargs, &key, &next, "expected (key, next_access=NEVER)") < 0) return NULL;
    if (vt->insert(self, key, next) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *np_access(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    int64_t key, next;
    const ExoPolicyVT *vt = vt_of(self);
    if (vt == NULL || exo_parse_key_next(args, nargs, &key, &next, "expected (key, next_access=NEVER)") < 0) return NULL;
    if (vt->access(self, key, next) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *np_one_key(PyObject *self, PyObject *arg, int (*fn)(PyObject *, int64_t)) {
    int64_t key;
    if (exo_as_key(arg, &key) < 0) return NULL;
    if (fn(self, key) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *np_remove(PyObject *self, PyObject *arg) {
    const ExoPolicyVT *vt = vt_of(self);
    return vt == NULL ? NULL : np_one_key(self, arg, vt->remove);
}

static PyObject *np_touch_impl(PyObject *self, PyObject *arg) {
    const ExoPolicyVT *vt = vt_of(self);
    return vt == NULL ? NULL : np_one_key(self, arg, vt->touch);
}

static PyObject *np_release_impl(PyObject *self, PyObject *arg) {
    const ExoPolicyVT *vt = vt_of(self);
    return vt == NULL ? NULL : np_one_key(self, arg, vt->release);
}

static PyObject *np_prepare_impl(PyObject *self, PyObject *arg) {
    const ExoPolicyVT *vt = vt_of(self);
    return vt == NULL ? NULL : np_one_key(self, arg, vt->prepare_insert);
}

static PyObject *np_victim(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    int64_t out;
    const ExoPolicyVT *vt = vt_of(self);
    if (vt == NULL || vt->victim(self, &out) < 0) return NULL;
    return PyLong_FromLongLong(out);
}

static PyObject *np_verify(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    const ExoPolicyVT *vt = vt_of(self);
    if (vt == NULL) return NULL;
    Py_ssize_t n = vt->len(self);
    if (n > ((ExoPolicy *)self)->capacity) {
        PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(self), "name");
        exo_policy_invariant("%S: %zd resident keys exceed capacity %lld", name ? name : Py_None, n,
                             (long long)((ExoPolicy *)self)->capacity);
        Py_XDECREF(name);
        return NULL;
    }
    if (vt->verify != NULL && vt->verify(self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *np_nbytes(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    const ExoPolicyVT *vt = vt_of(self);
    if (vt == NULL) return NULL;
    return PyLong_FromSize_t(vt->nbytes ? vt->nbytes(self) : 0);
}

static Py_ssize_t np_len(PyObject *self) {
    const ExoPolicyVT *vt = vt_of(self);
    return vt == NULL ? -1 : vt->len(self);
}

static int np_contains(PyObject *self, PyObject *arg) {
    const ExoPolicyVT *vt = vt_of(self);
    if (vt == NULL) return -1;
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        /* a key that is not an int64 is not resident */
        PyErr_Clear();
        return 0;
    }
    return vt->contains(self, (int64_t)v);
}

static PyMethodDef touch_def = {"touch", (PyCFunction)np_touch_impl, METH_O, "Record a hit (as access(key, NEVER))."};
static PyMethodDef release_def = {"release", (PyCFunction)np_release_impl, METH_O,
                                  "Under prefix reuse, the request holding this key has finished."};
static PyMethodDef prepare_def = {"prepare_insert", (PyCFunction)np_prepare_impl, METH_O,
                                  "Told the key about to be admitted before its victims are chosen."};

static PyObject *hook(PyObject *self, int present, PyMethodDef *def) {
    if (vt_of(self) == NULL) return NULL;
    if (!present) Py_RETURN_NONE;
    return PyCFunction_NewEx(def, self, NULL);
}

static PyObject *get_touch(PyObject *self, void *Py_UNUSED(c)) {
    const ExoPolicyVT *vt = ((ExoPolicy *)self)->vt;
    return hook(self, vt != NULL && vt->touch != NULL, &touch_def);
}
static PyObject *get_release(PyObject *self, void *Py_UNUSED(c)) {
    const ExoPolicyVT *vt = ((ExoPolicy *)self)->vt;
    return hook(self, vt != NULL && vt->release != NULL, &release_def);
}
static PyObject *get_prepare(PyObject *self, void *Py_UNUSED(c)) {
    const ExoPolicyVT *vt = ((ExoPolicy *)self)->vt;
    return hook(self, vt != NULL && vt->prepare_insert != NULL, &prepare_def);
}
static PyObject *get_capacity(PyObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(((ExoPolicy *)self)->capacity);
}

static PyMethodDef base_methods[] = {
    {"insert", (PyCFunction)(void (*)(void))np_insert, METH_FASTCALL,
     "Record ``key`` as newly resident (it was not resident before)."},
    {"access", (PyCFunction)(void (*)(void))np_access, METH_FASTCALL, "Record a hit on the resident ``key``."},
    {"remove", (PyCFunction)np_remove, METH_O, "Forget the resident ``key``, which leaves without being a victim."},
    {"victim", (PyCFunction)np_victim, METH_NOARGS, "Choose the resident key to evict next, forget it and return it."},
    {"verify", (PyCFunction)np_verify, METH_NOARGS, "Check the metadata's consistency; raise PolicyInvariantError."},
    {"nbytes", (PyCFunction)np_nbytes, METH_NOARGS, "Bytes of memory the policy's metadata holds."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef base_getset[] = {
    {"touch", get_touch, NULL, "The hit hook (``None`` when a hit changes nothing).", NULL},
    {"release", get_release, NULL, "The release hook of prefix reuse, or ``None``.", NULL},
    {"prepare_insert", get_prepare, NULL, "The pre-admission hook, or ``None``.", NULL},
    {"capacity_blocks", get_capacity, NULL, "How many blocks the tier holds before it must evict.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *base_new(PyTypeObject *type, PyObject *Py_UNUSED(a), PyObject *Py_UNUSED(k)) {
    if (type == ExoPolicy_Type) {
        PyErr_SetString(PyExc_TypeError, "NativePolicy is abstract");
        return NULL;
    }
    PyObject *self = type->tp_alloc(type, 0);
    if (self != NULL) ((ExoPolicy *)self)->vt = NULL;
    return self;
}

static PyType_Slot base_slots[] = {
    {Py_tp_doc, "Base of the compiled policies: the Policy interface over a C vtable."},
    {Py_tp_new, base_new},
    {Py_tp_methods, base_methods},
    {Py_tp_getset, base_getset},
    {Py_sq_length, np_len},
    {Py_sq_contains, np_contains},
    {0, NULL},
};

static PyType_Spec base_spec = {
    "exo_sim._core.NativePolicy", sizeof(ExoPolicy), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, base_slots,
};

int exo_policy_add_base(PyObject *module) {
    ExoPolicy_Type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &base_spec, NULL);
    if (ExoPolicy_Type == NULL) return -1;
    PyObject *never = PyLong_FromLongLong(EXO_NEVER);
    if (never == NULL) return -1;
    int rc = PyModule_AddObject(module, "NEVER", never);
    if (rc < 0) {
        Py_DECREF(never);
        return -1;
    }
    if (PyObject_SetAttrString((PyObject *)ExoPolicy_Type, "needs_future", Py_False) < 0) return -1;
    if (PyObject_SetAttrString((PyObject *)ExoPolicy_Type, "name", PyUnicode_FromString("")) < 0) return -1;
    Py_INCREF(ExoPolicy_Type);
    if (PyModule_AddObject(module, "NativePolicy", (PyObject *)ExoPolicy_Type) < 0) {
        Py_DECREF(ExoPolicy_Type);
        return -1;
    }
    return 0;
}

PyTypeObject *exo_policy_make_type(PyObject *module, const char *qualname, const char *doc, size_t basicsize,
                                   initproc init, destructor dealloc, PyMethodDef *extra_methods) {
    PyType_Slot slots[] = {
        {Py_tp_doc, (void *)doc},
        {Py_tp_init, init},
        {Py_tp_dealloc, dealloc},
        {extra_methods ? Py_tp_methods : 0, extra_methods},
        {0, NULL},
    };
    if (extra_methods == NULL) slots[3].slot = 0;
    PyType_Spec spec = {qualname, (int)basicsize, 0, Py_TPFLAGS_DEFAULT, slots};
    PyObject *bases = PyTuple_Pack(1, (PyObject *)ExoPolicy_Type);
    if (bases == NULL) return NULL;
    PyTypeObject *t = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, bases);
    Py_DECREF(bases);
    if (t == NULL) return NULL;
    const char *dot = strrchr(qualname, '.');
    if (PyModule_AddObjectRef(module, dot ? dot + 1 : qualname, (PyObject *)t) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

/* ------------------------------------------------------------------ PolicyRef */
static PyObject *bound_or_null(PyObject *obj, const char *name) {
    PyObject *m = PyObject_GetAttrString(obj, name);
    if (m == NULL) return NULL;
    if (m == Py_None) {
        Py_DECREF(m);
        return Py_None; /* a marker, not a reference */
    }
    return m;
}

int policyref_init(PolicyRef *r, PyObject *obj) {
    memset(r, 0, sizeof(*r));
    Py_INCREF(obj);
    r->obj = obj;
    if (PyObject_TypeCheck(obj, ExoPolicy_Type)) {
        r->vt = ((ExoPolicy *)obj)->vt;
        if (r->vt == NULL) {
            PyErr_SetString(PyExc_TypeError, "policy object was not initialised");
            return -1;
        }
        return 0;
    }
    const char *names[] = {"insert", "access", "touch", "release", "prepare_insert", "remove", "victim"};
    PyObject **dst[] = {&r->insert, &r->access, &r->touch, &r->release, &r->prepare, &r->remove, &r->victim};
    for (int i = 0; i < 7; i++) {
        PyObject *m = bound_or_null(obj, names[i]);
        if (m == NULL) {
            if (i >= 2 && i <= 4 && PyErr_ExceptionMatches(PyExc_AttributeError)) {
                PyErr_Clear();
                m = Py_None;
            } else {
                return -1;
            }
        }
        *dst[i] = (m == Py_None) ? NULL : m;
    }
    /* a Python policy without ``touch`` (None) changes nothing on a hit; ``touch`` defaults to access in Policy */
    return 0;
}

void policyref_clear(PolicyRef *r) {
    Py_CLEAR(r->obj);
    Py_CLEAR(r->insert);
    Py_CLEAR(r->access);
    Py_CLEAR(r->touch);
    Py_CLEAR(r->release);
    Py_CLEAR(r->prepare);
    Py_CLEAR(r->remove);
    Py_CLEAR(r->victim);
    r->vt = NULL;
}

static int call_key(PyObject *fn, int64_t key) {
    PyObject *k = PyLong_FromLongLong(key);
    if (k == NULL) return -1;
    PyObject *res = PyObject_CallOneArg(fn, k);
    Py_DECREF(k);
    if (res == NULL) return -1;
    Py_DECREF(res);
    return 0;
}

static int call_key_next(PyObject *fn, int64_t key, int64_t next) {
    PyObject *args[2];
    args[0] = PyLong_FromLongLong(key);
    args[1] = PyLong_FromLongLong(next);
    if (args[0] == NULL || args[1] == NULL) {
        Py_XDECREF(args[0]);
        Py_XDECREF(args[1]);
        return -1;
    }
    PyObject *res = PyObject_Vectorcall(fn, args, 2, NULL);
    Py_DECREF(args[0]);
    Py_DECREF(args[1]);
    if (res == NULL) return -1;
    Py_DECREF(res);
    return 0;
}

int pol_insert(PolicyRef *r, int64_t key, int64_t next) {
    return r->vt ? r->vt->insert(r->obj, key, next) : call_key_next(r->insert, key, next);
}
int pol_access(PolicyRef *r, int64_t key, int64_t next) {
    return r->vt ? r->vt->access(r->obj, key, next) : call_key_next(r->access, key, next);
}
int pol_touch(PolicyRef *r, int64_t key) {
    if (r->vt) return r->vt->touch ? r->vt->touch(r->obj, key) : 0;
    return r->touch ? call_key(r->touch, key) : 0;
}
int pol_has_release(const PolicyRef *r) { return r->vt ? r->vt->release != NULL : r->release != NULL; }
int pol_release(PolicyRef *r, int64_t key) {
    if (r->vt) return r->vt->release ? r->vt->release(r->obj, key) : 0;
    return r->release ? call_key(r->release, key) : 0;
}
int pol_has_prepare(const PolicyRef *r) { return r->vt ? r->vt->prepare_insert != NULL : r->prepare != NULL; }
int pol_prepare(PolicyRef *r, int64_t key) {
    if (r->vt) return r->vt->prepare_insert ? r->vt->prepare_insert(r->obj, key) : 0;
    return r->prepare ? call_key(r->prepare, key) : 0;
}
int pol_remove(PolicyRef *r, int64_t key) { return r->vt ? r->vt->remove(r->obj, key) : call_key(r->remove, key); }
int pol_victim(PolicyRef *r, int64_t *out) {
    if (r->vt) return r->vt->victim(r->obj, out);
    PyObject *res = PyObject_CallNoArgs(r->victim);
    if (res == NULL) return -1;
    int rc = exo_as_key(res, out);
    Py_DECREF(res);
    return rc;
}
int pol_contains(PolicyRef *r, int64_t key) {
    if (r->vt) return r->vt->contains(r->obj, key);
    PyObject *k = PyLong_FromLongLong(key);
    if (k == NULL) return -1;
    int rc = PySequence_Contains(r->obj, k);
    Py_DECREF(k);
    return rc;
}
Py_ssize_t pol_len(PolicyRef *r) { return r->vt ? r->vt->len(r->obj) : PyObject_Size(r->obj); }
