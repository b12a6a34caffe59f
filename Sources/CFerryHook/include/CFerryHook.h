#ifndef CFERRYHOOK_H
#define CFERRYHOOK_H

#include <stdint.h>

// Forward declaration only: event2 headers stay out of this public header (they define
// _GNU_SOURCE and would change libc's types for every Swift module that imports this one).
struct evhttp_request;
struct evhttp_connection;
struct event_base;
struct evdns_base;
struct bufferevent;

/// Called for every request object libevent creates, with the `cb_arg` it was created for
/// (for server requests: the `struct evhttp *`).
typedef void (*CFerryHook_RequestObserver)(struct evhttp_request *request, void *argument);

/// Installs the observer that sees every new request object. Pass NULL to remove it.
void CFerryHook_setRequestObserver(CFerryHook_RequestObserver observer);

/// How many request objects the interposed `evhttp_request_new` has created. Zero after a
/// server accepted a connection means the interposition is not in effect.
uint64_t CFerryHook_requestsSeen(void);

/// HTTP connections alive now, counted by interposing libevent's constructor and
/// destructor of connections (2.1.12 has no connection limit of its own).
int64_t CFerryHook_connectionsOpen(void);

#endif
