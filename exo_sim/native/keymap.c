/* An int64 -> int64 hash map: open addressing, linear probing, backward-shift deletion (no
 * tombstones), grown at 70 % load. 16 bytes a slot; EXO_EMPTY marks a free one. */
#include "core.h"

#include <string.h>

static inline size_t mix(int64_t key) {
    uint64_t z = (uint64_t)key + 0x9E3779B97F4A7C15ULL; /* splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (size_t)(z ^ (z >> 31));
}

static int alloc_slots(KeyMap *m, size_t cap) {
    KeySlot *s = PyMem_RawMalloc(cap * sizeof(KeySlot));
    if (s == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < cap; i++) s[i].key = EXO_EMPTY;
    m->slots = s;
    m->mask = cap - 1;
    return 0;
}

int keymap_init(KeyMap *m, size_t expected) {
    size_t cap = 16;
    while (cap * 7 / 10 < expected) cap <<= 1;
    m->size = 0;
    return alloc_slots(m, cap);
}

void keymap_free(KeyMap *m) {
    PyMem_RawFree(m->slots);
    m->slots = NULL;
    m->mask = 0;
    m->size = 0;
}

void keymap_clear(KeyMap *m) {
    if (m->slots == NULL) return;
    for (size_t i = 0; i <= m->mask; i++) m->slots[i].key = EXO_EMPTY;
    m->size = 0;
}

int64_t *keymap_get(const KeyMap *m, int64_t key) {
    size_t i = mix(key) & m->mask;
    for (;;) {
        KeySlot *s = &m->slots[i];
        if (s->key == key) return &s->value;
        if (s->key == EXO_EMPTY) return NULL;
        i = (i + 1) & m->mask;
    }
}

static int grow(KeyMap *m) {
    KeySlot *old = m->slots;
    size_t old_cap = m->mask + 1;
    if (alloc_slots(m, old_cap * 2) < 0) {
        m->slots = old;
        return -1;
    }
    for (size_t j = 0; j < old_cap; j++) {
        if (old[j].key == EXO_EMPTY) continue;
        size_t i = mix(old[j].key) & m->mask;
        while (m->slots[i].key != EXO_EMPTY) i = (i + 1) & m->mask;
        m->slots[i] = old[j];
    }
    PyMem_RawFree(old);
    return 0;
}

int keymap_put(KeyMap *m, int64_t key, int64_t value) {
    size_t i = mix(key) & m->mask;
    for (;;) {
        KeySlot *s = &m->slots[i];
        if (s->key == key) {
            s->value = value;
            return 0;
        }
        if (s->key == EXO_EMPTY) break;
        i = (i + 1) & m->mask;
    }
    if ((m->size + 1) * 10 > (m->mask + 1) * 7) {
        if (grow(m) < 0) return -1;
        i = mix(key) & m->mask;
        while (m->slots[i].key != EXO_EMPTY) i = (i + 1) & m->mask;
    }
    m->slots[i].key = key;
    m->slots[i].value = value;
    m->size++;
    return 0;
}

int keymap_del(KeyMap *m, int64_t key) {
    size_t mask = m->mask;
    size_t i = mix(key) & mask;
    for (;;) {
        if (m->slots[i].key == key) break;
        if (m->slots[i].key == EXO_EMPTY) return 0;
        i = (i + 1) & mask;
    }
    /* backward shift: move later members of the probe run into the hole when their home allows */
    size_t hole = i;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        int64_t k = m->slots[j].key;
        if (k == EXO_EMPTY) break;
        size_t home = mix(k) & mask;
        /* k may move to hole iff hole lies cyclically in [home, j) */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].key = EXO_EMPTY;
    m->size--;
    return 1;
}

size_t keymap_bytes(const KeyMap *m) { return m->slots == NULL ? 0 : (m->mask + 1) * sizeof(KeySlot); }
