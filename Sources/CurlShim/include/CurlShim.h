// CurlShim: non-variadic wrappers for curl_easy_setopt and curl_easy_getinfo, which Swift cannot
// call, over the system libcurl (CCurl). Owns nothing else; depends on libcurl only.
#ifndef AGENT_SIDECAR_CURL_SHIM_H
#define AGENT_SIDECAR_CURL_SHIM_H

// Swift cannot call C variadic functions such as curl_easy_setopt and
// curl_easy_getinfo. These wrappers give each argument type its own
// non-variadic entry point.

#include <curl/curl.h>

CURLcode curlshim_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode curlshim_easy_setopt_pointer(CURL *handle, CURLoption option, const void *value);
CURLcode curlshim_easy_setopt_offset(CURL *handle, CURLoption option, curl_off_t value);
CURLcode curlshim_easy_setopt_blob(CURL *handle, CURLoption option, const void *data, size_t length);
CURLcode curlshim_easy_setopt_write_function(CURL *handle, curl_write_callback callback);
CURLcode curlshim_easy_setopt_header_function(CURL *handle, curl_write_callback callback);
CURLcode curlshim_easy_setopt_xferinfo_function(CURL *handle, curl_xferinfo_callback callback);
CURLcode curlshim_easy_setopt_sockopt_function(CURL *handle, curl_sockopt_callback callback);

CURLcode curlshim_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode curlshim_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value);
CURLcode curlshim_easy_getinfo_offset(CURL *handle, CURLINFO info, curl_off_t *value);

CURLMcode curlshim_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

// curl_global_init with an allocator that zeroes every block before it is freed (and the old
// block when realloc moves one), so request copies holding a session token do not linger in
// freed heap memory.
CURLcode curlshim_global_init_zeroing(long flags);

// Zeroes memory in a way the compiler cannot drop.
void curlshim_secure_zero(void *pointer, size_t length);

#endif
