/* Reading a sequence of int64 keys from Python (see Keys in core.h): the hierarchy's access_many and
 * preload and KeySet.update take a list of ints or an int64 array through it. */
#include "core.h"

int keys_open(PyObject *o, Keys *k, const char *what) {
    k->fast = NULL;
    k->data = NULL;
    k->view.obj = NULL;
    if (PyObject_CheckBuffer(o) && PyObject_GetBuffer(o, &k->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        const char *f = k->view.format;
        if (f != NULL && (f[0] == '<' || f[0] == '=' || f[0] == '@')) f++;
        if (k->view.ndim == 1 && k->view.itemsize == 8 && f != NULL && (f[0] == 'l' || f[0] == 'q') && f[1] == 0) {
            k->data = (const int64_t *)k->view.buf;
            k->n = k->view.len / 8;
            return 0;
        }
        PyBuffer_Release(&k->view);
        k->view.obj = NULL;
    }
    PyErr_Clear();
    k->fast = PySequence_Fast(o, what);
    if (k->fast == NULL) return -1;
    k->n = PySequence_Fast_GET_SIZE(k->fast);
    return 0;
}

void keys_close(Keys *k) {
    if (k->view.obj != NULL) PyBuffer_Release(&k->view);
    Py_CLEAR(k->fast);
}
