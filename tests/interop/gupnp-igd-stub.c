/*
 * A stand-in for libgupnp-igd-1.0.so.4, for the WHIP interop tests only.
 *
 * Debian's whip-client links libsoup 2.4, while libnice's UPnP helper (libgupnp-igd) links
 * libsoup 3; both in one process abort at start ("libsoup2 symbols detected"). libnice only
 * uses UPnP to ask a home router for port mappings, which a test never needs, so the tests
 * put this library first on LD_LIBRARY_PATH. These are the four symbols libnice imports
 * (`nm -D --undefined-only libnice.so.10 | grep gupnp`); a NULL thread makes libnice skip UPnP.
 */
#include <stddef.h>

void *gupnp_simple_igd_thread_new(void) { return NULL; }
unsigned long gupnp_simple_igd_get_type(void) { return 0; }
void gupnp_simple_igd_add_port(void *self, const char *protocol, unsigned external_port,
                               const char *local_ip, unsigned local_port, unsigned lease,
                               const char *description) {}
void gupnp_simple_igd_remove_port_local(void *self, const char *protocol, const char *local_ip,
                                        unsigned local_port) {}
