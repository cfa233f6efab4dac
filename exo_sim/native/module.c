/* exo_sim._core: the compiled decision core (the hierarchy's cascade and the native policies). */
#include "core.h"

static int core_exec(PyObject *m) {
    if (exo_policy_add_base(m) < 0) return -1;
    if (exo_queue_add_types(m) < 0) return -1;
    if (exo_hierarchy_add_type(m) < 0) return -1;
    if (exo_keyset_add_type(m) < 0) return -1;
    if (exo_arc_add_type(m) < 0) return -1;
    if (exo_lfu_add_type(m) < 0) return -1;
    if (exo_belady_add_type(m) < 0) return -1;
    if (exo_sieve_add_type(m) < 0) return -1;
    if (exo_s3fifo_add_type(m) < 0) return -1;
    return 0;
}

static PyModuleDef_Slot core_slots[] = {{Py_mod_exec, core_exec}, {0, NULL}};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "exo_sim._core",
    "The compiled decision core: the hierarchy's cascade and the native eviction policies.", 0, NULL,
    core_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
