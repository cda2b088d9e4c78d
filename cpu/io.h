/* cpu/io.h -- the built-in devices reached by port I/O (internal to cpu/). */
#ifndef VLAB_CPU_IO_H
#define VLAB_CPU_IO_H

#include "cpu/cpu.h"

/* Perform one port access from the instruction at pc and record it. */
void io_port(cpu_t *c, int is_out, uint16_t port, uint32_t *value, uint32_t pc);

#endif
