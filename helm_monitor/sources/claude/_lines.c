/* The per-line triage of a transcript chunk, at C speed (helm_monitor.sources.claude.transcript).
 *
 * lines(buf, start) walks the complete lines of buf from start and tells, for each, what the
 * pure-Python reader would find out with its first-byte tests (TranscriptReader._skippable,
 * _wanted_start):
 *
 *   SKIP   (1) bookkeeping the session list never reads, with nothing glued behind it that it
 *              does read: the reader only remembers it, for its date;
 *   RECORD (2) not bookkeeping: the reader decodes it;
 *   OTHER  (0) anything else (a cost-state, a line with the start of a needed record inside it):
 *              the reader looks at it itself, as it would without this module.
 *
 * It returns (flat, next): flat holds kind, start, end for every non-empty line, next is where the
 * unfinished last line starts (len(buf) if none). The tests are the Python ones, byte for byte;
 * where this module is not built the reader does them in Python (tests run both).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define KIND_OTHER 0
#define KIND_SKIP 1
#define KIND_RECORD 2

#define PREFIX_BYTES 512         /* _PREFIX_BYTES */
#define METADATA_TAIL_BYTES 1024 /* METADATA_TAIL_BYTES */

static const char TYPE_FIRST[] = "{\"type\":\"";           /* _TYPE_FIRST */
#define TYPE_FIRST_LEN 9
static const char CONVERSATION_KEY[] = "\"parentUuid\":";  /* _CONVERSATION_KEY */
#define CONVERSATION_KEY_LEN 13

/* WANTED_TYPES, and the types _METADATA_START_RE names (the same six). */
static const char *const WANTED[] = {"user", "assistant", "summary", "ai-title", "custom-title", "agent-name"};
#define N_WANTED 6

static int
has_prefix(const char *p, const char *end, const char *lit, Py_ssize_t n)
{
    return end - p >= n && memcmp(p, lit, (size_t)n) == 0;
}

static int
wanted_type(const char *name, Py_ssize_t n)
{
    for (int k = 0; k < N_WANTED; k++) {
        if ((Py_ssize_t)strlen(WANTED[k]) == n && memcmp(name, WANTED[k], (size_t)n) == 0)
            return 1;
    }
    return 0;
}

/* _ATTACHMENT_RE.match(buf, p, min(end, p + 512)):
 * {"parentUuid":(?:null|"[^"]{0,80}"),"isSidechain":(?:true|false),"attachment": */
static int
attachment_head(const char *p, const char *end)
{
    const char *lim = end - p > PREFIX_BYTES ? p + PREFIX_BYTES : end;
    static const char head[] = "{\"parentUuid\":";
    if (!has_prefix(p, lim, head, 14))
        return 0;
    p += 14;
    if (has_prefix(p, lim, "null", 4)) {
        p += 4;
    } else {
        if (p >= lim || *p != '"')
            return 0;
        p++;
        const char *q = p;
        while (q < lim && *q != '"' && q - p <= 80)
            q++;
        if (q >= lim || *q != '"' || q - p > 80)
            return 0;
        p = q + 1;
    }
    static const char side[] = ",\"isSidechain\":";
    if (!has_prefix(p, lim, side, 15))
        return 0;
    p += 15;
    if (has_prefix(p, lim, "true", 4))
        p += 4;
    else if (has_prefix(p, lim, "false", 5))
        p += 5;
    else
        return 0;
    return has_prefix(p, lim, ",\"attachment\":", 14);
}

/* TranscriptReader._skippable(buf, p, end). */
static int
skippable(const char *p, const char *end)
{
    if (has_prefix(p, end, TYPE_FIRST, TYPE_FIRST_LEN)) {
        const char *name = p + TYPE_FIRST_LEN;
        const char *lim = end - p > 64 ? p + 64 : end;
        const char *q = name < lim ? memchr(name, '"', (size_t)(lim - name)) : NULL;
        return q != NULL && !wanted_type(name, q - name);
    }
    return attachment_head(p, end);
}

/* _metadata_start(buf, lo, end) >= 0: a {"type":"<a wanted type>" in [lo, end). */
static int
metadata_start(const char *lo, const char *end)
{
    const char *p = lo;
    while (end - p >= TYPE_FIRST_LEN) {
        p = memmem(p, (size_t)(end - p), TYPE_FIRST, TYPE_FIRST_LEN);
        if (p == NULL)
            return 0;
        const char *name = p + TYPE_FIRST_LEN;
        for (int k = 0; k < N_WANTED; k++) {
            Py_ssize_t n = (Py_ssize_t)strlen(WANTED[k]);
            if (end - name >= n + 1 && memcmp(name, WANTED[k], (size_t)n) == 0 && name[n] == '"')
                return 1;
        }
        p++;
    }
    return 0;
}

/* _wanted_start(buf, pos, end) >= 0. */
static int
wanted_start(const char *base, const char *pos, const char *end)
{
    const char *p = pos + 1;
    while (end - p >= CONVERSATION_KEY_LEN) {
        p = memmem(p, (size_t)(end - p), CONVERSATION_KEY, CONVERSATION_KEY_LEN);
        if (p == NULL)
            break;
        if (p > base && p[-1] == '{')
            return 1;
        p++;
    }
    const char *lo = end - METADATA_TAIL_BYTES > pos ? end - METADATA_TAIL_BYTES : pos;
    return metadata_start(lo, end);
}

static int
kind_of(const char *base, const char *p, const char *end)
{
    if (!skippable(p, end))
        return KIND_RECORD;
    if (has_prefix(p, end, "{\"type\":\"cost-state\"", 20))
        return KIND_OTHER;
    /* The reader searches an attachment from its tail mark on, a later point than this: finding
     * nothing from here means it finds nothing either. */
    return wanted_start(base, p + 1, end) ? KIND_OTHER : KIND_SKIP;
}

static int
append3(PyObject *list, long kind, Py_ssize_t s, Py_ssize_t e)
{
    PyObject *v;
    if ((v = PyLong_FromLong(kind)) == NULL || PyList_Append(list, v) < 0)
        goto fail;
    Py_DECREF(v);
    if ((v = PyLong_FromSsize_t(s)) == NULL || PyList_Append(list, v) < 0)
        goto fail;
    Py_DECREF(v);
    if ((v = PyLong_FromSsize_t(e)) == NULL || PyList_Append(list, v) < 0)
        goto fail;
    Py_DECREF(v);
    return 0;
fail:
    Py_XDECREF(v);
    return -1;
}

static PyObject *
lines(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "y*n:lines", &view, &start))
        return NULL;
    const char *base = view.buf;
    Py_ssize_t size = view.len;
    PyObject *flat = PyList_New(0);
    if (flat == NULL)
        goto fail;
    if (start < 0)
        start = 0;
    while (start < size) {
        const char *p = base + start;
        const char *nl = memchr(p, '\n', (size_t)(size - start));
        if (nl == NULL)
            break;
        Py_ssize_t end = nl - base;
        if (end > start && append3(flat, kind_of(base, p, nl), start, end) < 0)
            goto fail;
        start = end + 1;
    }
    PyBuffer_Release(&view);
    PyObject *next = PyLong_FromSsize_t(start < size ? start : size);
    if (next == NULL) {
        Py_DECREF(flat);
        return NULL;
    }
    PyObject *res = PyTuple_Pack(2, flat, next);
    Py_DECREF(flat);
    Py_DECREF(next);
    return res;
fail:
    Py_XDECREF(flat);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"lines", lines, METH_VARARGS,
     "lines(buf, start) -> (flat, next): kind, start, end of each complete line from start; "
     "next: where the unfinished last line starts."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lines", "The per-line triage of transcript chunks.", -1, methods,
};

PyMODINIT_FUNC
PyInit__lines(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "OTHER", KIND_OTHER) < 0 || PyModule_AddIntConstant(m, "SKIP", KIND_SKIP) < 0
        || PyModule_AddIntConstant(m, "RECORD", KIND_RECORD) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
