#include "CurlShim.h"

#include <stdlib.h>
#include <string.h>
#if defined(__APPLE__)
#include <malloc/malloc.h>
#define usable_size(pointer) malloc_size(pointer)
#else
#include <malloc.h>
#define usable_size(pointer) malloc_usable_size(pointer)
#endif

CURLcode curlshim_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode curlshim_easy_setopt_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode curlshim_easy_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode curlshim_easy_setopt_blob(CURL *handle, CURLoption option, const void *data, size_t length) {
    struct curl_blob blob;
    blob.data = (void *)data;
    blob.len = length;
    blob.flags = CURL_BLOB_COPY;
    return curl_easy_setopt(handle, option, &blob);
}

CURLcode curlshim_easy_setopt_write_function(CURL *handle, curl_write_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, callback);
}

CURLcode curlshim_easy_setopt_header_function(CURL *handle, curl_write_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, callback);
}

CURLcode curlshim_easy_setopt_xferinfo_function(CURL *handle, curl_xferinfo_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

CURLcode curlshim_easy_setopt_sockopt_function(CURL *handle, curl_sockopt_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_SOCKOPTFUNCTION, callback);
}

CURLcode curlshim_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

CURLcode curlshim_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}

CURLcode curlshim_easy_getinfo_offset(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

CURLMcode curlshim_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

void curlshim_secure_zero(void *pointer, size_t length) {
    if (pointer == NULL || length == 0) return;
    volatile unsigned char *bytes = (volatile unsigned char *)pointer;
    while (length--) *bytes++ = 0;
}

// Blocks up to this size are zeroed whole. Of a larger block (libcurl's 256 KiB receive and
// upload buffers) only the head is zeroed: a request or response that carries the token (the
// Authorization line, a session mint's answer) starts at the head of its buffer and is far
// shorter, while zeroing all of every large buffer would make its untouched pages resident
// (64 idle handles of 256 KiB each: +16 MiB of RSS, measured).
#define ZERO_WHOLE_UP_TO 65536
#define ZERO_HEAD_OF_LARGE 16384

static void zeroing_free(void *pointer) {
    if (pointer == NULL) return;
    size_t size = usable_size(pointer);
    curlshim_secure_zero(pointer, size <= ZERO_WHOLE_UP_TO ? size : ZERO_HEAD_OF_LARGE);
    free(pointer);
}

static void *zeroing_realloc(void *pointer, size_t size) {
    if (pointer == NULL) return malloc(size);
    if (size == 0) {
        zeroing_free(pointer);
        return NULL;
    }
    size_t old = usable_size(pointer);
    if (size <= old) return pointer;
    void *moved = malloc(size);
    if (moved == NULL) return NULL;
    memcpy(moved, pointer, old);
    zeroing_free(pointer);
    return moved;
}

static char *zeroing_strdup(const char *text) {
    size_t size = strlen(text) + 1;
    char *copy = malloc(size);
    if (copy != NULL) memcpy(copy, text, size);
    return copy;
}

CURLcode curlshim_global_init_zeroing(long flags) {
    return curl_global_init_mem(flags, malloc, zeroing_free, zeroing_realloc, zeroing_strdup, calloc);
}
