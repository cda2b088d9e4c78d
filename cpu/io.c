/* cpu/io.c -- port I/O: the console (a COM1-like output port at 0x3f8), the
 * programmable interval timer (port 0x40: a period in cycles; it raises IRQ 0
 * every period, deterministically from the cycle counter), and a hook for
 * devices that live outside cpu/ (the disk controller, hypervisor/disk.c). */
#include "cpu/io.h"

#include <stdlib.h>
#include <string.h>

static void console_put(cpu_t *c, char ch) {
    if (c->console_len == c->console_max) return; /* cap reached: further output is dropped */
    if (c->console_len == c->console_cap) {
        size_t cap = c->console_cap ? c->console_cap * 2 : 256;
        char *p = realloc(c->console, cap + 1);
        if (!p) return;
        c->console = p;
        c->console_cap = cap;
    }
    c->console[c->console_len++] = ch;
    c->console[c->console_len] = 0;
}

const char *cpu_console(const cpu_t *c, size_t *len) {
    if (len) *len = c->console_len;
    return c->console ? c->console : "";
}

void io_port(cpu_t *c, int is_out, uint16_t port, uint32_t *value, uint32_t pc) {
    switch (port) {
    case PORT_CONSOLE:
        if (is_out)
            console_put(c, (char)(*value & 0xff));
        else
            *value = 0;
        break;
    case PORT_TIMER:
        if (is_out) {
            c->timer_period = *value;
            c->timer_deadline = c->cycles + *value;
            c->event_at = 0; /* the run loop recomputes when to look next */
        } else {
            *value = c->timer_period && c->timer_deadline > c->cycles
                         ? (uint32_t)(c->timer_deadline - c->cycles)
                         : 0;
        }
        break;
    default:
        /* an out is recorded before the device acts, so what the device
         * records (the disk's request) follows the access that caused it */
        if (is_out) cpu_emit(c, EV_IO, is_out, 0, pc, port, *value);
        if (c->port_fn) { /* the device sees c->pc at the instruction, for its own events */
            uint32_t npc = c->pc;
            c->pc = pc;
            int handled = c->port_fn(c->port_ud, c, is_out, port, value);
            c->pc = npc;
            if (!handled && !is_out) *value = 0xffffffffu;
        } else if (!is_out) {
            *value = 0xffffffffu; /* nothing answers: an open bus reads all ones */
        }
        if (!is_out) cpu_emit(c, EV_IO, is_out, 0, pc, port, *value);
        return;
    }
    cpu_emit(c, EV_IO, is_out, 0, pc, port, *value);
}
