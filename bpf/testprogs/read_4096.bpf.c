// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* One bit of a 4096 KiB bitmap per packet: see read_probe.h. */
#define PROBE_KIB 4096
#include "read_probe.h"
