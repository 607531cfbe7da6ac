/*
 * anyws.sansio._speedups: compiled helpers for the sans-I/O core.
 *
 * apply_mask(data, mask, /) -> bytes
 *
 *     XOR ``data`` with the repeated 4-byte ``mask`` (RFC 6455, section 5.3).
 *     ``data`` is any object with the buffer protocol; a C-contiguous buffer
 *     is read in place, without a first copy.
 *
 * The module is optional: anyws.sansio._mask falls back to pure Python when it
 * is missing, and the two implementations are tested against each other.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64) || \
    (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#  include <emmintrin.h>
#  define ANYWS_SIMD_SSE2 1
#elif (defined(__ARM_NEON) || defined(__ARM_NEON__) || defined(_M_ARM64)) && \
    !defined(__ARM_BIG_ENDIAN)
#  include <arm_neon.h>
#  define ANYWS_SIMD_NEON 1
#endif

#define MASK_LEN 4

/* Inputs at least this large are masked with the GIL released: at several
 * GB/s that is tens of microseconds of work, well worth letting other threads
 * run; below it, the release and re-acquisition would dominate. */
#define RELEASE_GIL_THRESHOLD ((Py_ssize_t)64 * 1024)

/*
 * Write src[i] ^ mask[i % 4] to dst[i] for i in [0, len).
 *
 * ``src`` and ``dst`` may be the same pointer (in-place masking); they must
 * not otherwise overlap. Neither needs any alignment. Every block size below is
 * a multiple of 4, so the position in the key stays in step with ``i``.
 */
static void
xor_with_mask(const unsigned char *src, unsigned char *dst, Py_ssize_t len,
              const unsigned char *mask)
{
    unsigned char key[16];
    uint64_t key64;
    Py_ssize_t i = 0;

    /* The key repeated to 16 bytes, in memory order: loading it as a vector
     * or as a word keeps the byte order whatever the machine's endianness. */
    for (int k = 0; k < 16; k += MASK_LEN) {
        memcpy(key + k, mask, MASK_LEN);
    }
    memcpy(&key64, key, sizeof(key64));

#if defined(ANYWS_SIMD_SSE2)
    {
        const __m128i k128 = _mm_loadu_si128((const __m128i *)key);
        /* Four independent 16-byte lanes per round keep the load and store
         * ports busy; unaligned loads and stores cost the same as aligned
         * ones on any x86-64 made in the last decade when they do not cross
         * a cache line, and little more when they do. */
        for (; i + 64 <= len; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
            _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k128));
            _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_xor_si128(b, k128));
            _mm_storeu_si128((__m128i *)(dst + i + 32), _mm_xor_si128(c, k128));
            _mm_storeu_si128((__m128i *)(dst + i + 48), _mm_xor_si128(d, k128));
        }
        for (; i + 16 <= len; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
            _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k128));
        }
    }
#elif defined(ANYWS_SIMD_NEON)
    {
        const uint8x16_t k128 = vld1q_u8(key);
        for (; i + 64 <= len; i += 64) {
            uint8x16_t a = vld1q_u8(src + i);
            uint8x16_t b = vld1q_u8(src + i + 16);
            uint8x16_t c = vld1q_u8(src + i + 32);
            uint8x16_t d = vld1q_u8(src + i + 48);
            vst1q_u8(dst + i, veorq_u8(a, k128));
            vst1q_u8(dst + i + 16, veorq_u8(b, k128));
            vst1q_u8(dst + i + 32, veorq_u8(c, k128));
            vst1q_u8(dst + i + 48, veorq_u8(d, k128));
        }
        for (; i + 16 <= len; i += 16) {
            vst1q_u8(dst + i, veorq_u8(vld1q_u8(src + i), k128));
        }
    }
#else
    /* Portable path: two 64-bit words per round. memcpy() on a fixed size is
     * how C spells an unaligned load or store; compilers emit one move. */
    for (; i + 16 <= len; i += 16) {
        uint64_t a, b;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        a ^= key64;
        b ^= key64;
        memcpy(dst + i, &a, 8);
        memcpy(dst + i + 8, &b, 8);
    }
#endif

    if (i + 8 <= len) {
        uint64_t a;
        memcpy(&a, src + i, 8);
        a ^= key64;
        memcpy(dst + i, &a, 8);
        i += 8;
    }
    for (; i < len; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

static void
xor_with_mask_maybe_nogil(const unsigned char *src, unsigned char *dst, Py_ssize_t len,
                          const unsigned char *mask)
{
    if (len >= RELEASE_GIL_THRESHOLD) {
        Py_BEGIN_ALLOW_THREADS
        xor_with_mask(src, dst, len, mask);
        Py_END_ALLOW_THREADS
    }
    else {
        xor_with_mask(src, dst, len, mask);
    }
}

/* Copy the 4 bytes of the key into ``out``; on error, set an exception and
 * return -1. */
static int
read_mask(PyObject *obj, unsigned char *out)
{
    if (PyBytes_CheckExact(obj)) {
        if (PyBytes_GET_SIZE(obj) != MASK_LEN) {
            PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
            return -1;
        }
        memcpy(out, PyBytes_AS_STRING(obj), MASK_LEN);
        return 0;
    }

    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (view.len != MASK_LEN) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
        return -1;
    }
    memcpy(out, view.buf, MASK_LEN);
    PyBuffer_Release(&view);
    return 0;
}

/* A buffer that is not contiguous (a memoryview with a step, for example):
 * gather its bytes into the result, then mask the result in place. */
static PyObject *
apply_mask_strided(PyObject *data, const unsigned char *mask)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_FULL_RO) < 0) {
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, view.len);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    if (PyBuffer_ToContiguous(out, &view, view.len, 'C') < 0) {
        PyBuffer_Release(&view);
        Py_DECREF(result);
        return NULL;
    }
    PyBuffer_Release(&view);
    xor_with_mask_maybe_nogil(out, out, PyBytes_GET_SIZE(result), mask);
    return result;
}

PyDoc_STRVAR(apply_mask_doc,
"apply_mask(data, mask, /)\n"
"--\n"
"\n"
"Return ``data`` XOR-ed with the repeated 4-byte ``mask``, as bytes.\n"
"\n"
"``data`` is any bytes-like object; ``mask`` must be 4 bytes long, else\n"
"ValueError is raised.");

static PyObject *
apply_mask(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    unsigned char mask[MASK_LEN];
    Py_buffer view;
    PyObject *result;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "apply_mask() takes exactly 2 positional arguments (%zd given)", nargs);
        return NULL;
    }
    if (read_mask(args[1], mask) < 0) {
        return NULL;
    }

    PyObject *data = args[0];
    if (PyBytes_CheckExact(data)) {
        /* The common case, without the buffer protocol's bookkeeping. */
        Py_ssize_t len = PyBytes_GET_SIZE(data);
        result = PyBytes_FromStringAndSize(NULL, len);
        if (result == NULL) {
            return NULL;
        }
        xor_with_mask_maybe_nogil((const unsigned char *)PyBytes_AS_STRING(data),
                                  (unsigned char *)PyBytes_AS_STRING(result), len, mask);
        return result;
    }

    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_BufferError) || !PyObject_CheckBuffer(data)) {
            return NULL;
        }
        PyErr_Clear();
        return apply_mask_strided(data, mask);
    }
    result = PyBytes_FromStringAndSize(NULL, view.len);
    if (result != NULL) {
        /* The exported buffer pins a bytearray's storage: it cannot be
         * resized or freed while we read it, even with the GIL released. */
        xor_with_mask_maybe_nogil((const unsigned char *)view.buf,
                                  (unsigned char *)PyBytes_AS_STRING(result), view.len, mask);
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL, apply_mask_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    /* No per-module or global state: safe in every subinterpreter. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_GIL_DISABLED
    /* No shared mutable state: safe without the GIL. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(speedups_doc, "Compiled helpers for anyws.sansio.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "anyws.sansio._speedups",
    .m_doc = speedups_doc,
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
