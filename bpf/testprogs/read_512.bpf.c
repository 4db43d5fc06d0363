// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* One bit of a 512 KiB bitmap per packet: see read_probe.h. */
#define PROBE_KIB 512
#include "read_probe.h"
