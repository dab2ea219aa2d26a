#ifndef AGENT_SIDECAR_CCURL_SHIM_H
#define AGENT_SIDECAR_CCURL_SHIM_H
#include <curl/curl.h>
#endif
