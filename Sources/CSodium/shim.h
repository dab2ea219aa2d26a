#ifndef AGENT_SIDECAR_CSODIUM_SHIM_H
#define AGENT_SIDECAR_CSODIUM_SHIM_H
#include <sodium.h>
#endif
