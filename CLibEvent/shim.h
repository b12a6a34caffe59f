#ifndef CLIBEVENT_SHIM_H
#define CLIBEVENT_SHIM_H

// libc first: event2/event-config.h defines _GNU_SOURCE, which would otherwise give this
// module a different fd_set than SwiftGlibc's.
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/eventfd.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#endif
