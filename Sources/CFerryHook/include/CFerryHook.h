#ifndef CFERRYHOOK_H
#define CFERRYHOOK_H

#include <stdbool.h>
#include <stddef.h>
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

struct event_base;
struct evhttp_connection;

/// Copies into `into` (at most `capacity`) the open server connections of `base`; returns
/// how many. Call on the thread of `base`'s loop, so none of them is freed meanwhile.
size_t CFerryHook_openConnections(
    struct event_base *base, struct evhttp_connection **into, size_t capacity);


/// Connections made while `maximum` others are open are marked as overflow (their requests
/// get a refusal); at most `cap` connections are made at all, and an accepted socket past
/// it is closed at once by libevent (the cheapest refusal: nothing read, nothing written).
void CFerryHook_setConnectionLimits(int64_t maximum, int64_t cap);

/// Whether `connection` was made past the maximum.
bool CFerryHook_isOverflowConnection(const struct evhttp_connection *connection);

/// Sockets closed at once because the cap was reached.
uint64_t CFerryHook_connectionsRefused(void);

/// Called each time bytes arrive for a server request whose request line is not complete
/// yet, with its connection and its `cb_arg` (the `struct evhttp *`).
typedef void (*CFerryHook_HeadObserver)(
    struct evhttp_request *request, struct evhttp_connection *connection, void *argument);

/// Installs the observer of arriving heads (interposes `evhttp_parse_firstline_`). NULL removes it.
void CFerryHook_setHeadObserver(CFerryHook_HeadObserver observer);

/// Whether the interposed `evhttp_parse_firstline_` has run. False after a request arrived
/// means the header deadline cannot hold.
bool CFerryHook_firstLineHookRan(void);

/// Called when a line of a server request's head holds a NUL byte (interposes
/// `evhttp_parse_headers_` and `evbuffer_readln`). NULL removes it.
void CFerryHook_setNULObserver(CFerryHook_HeadObserver observer);

/// Whether the interposed `evbuffer_readln` has looked at a head line. False after a
/// request arrived means NUL bytes in heads go unseen.
bool CFerryHook_headLineHookRan(void);

/// The most bytes one read from a connection's socket may bring (interposes
/// `evbuffer_read`, whose own limit is 4096; at least 4096). Applies to connections made
/// after the call.
void CFerryHook_setLargestRead(size_t bytes);

/// Whether the interposed `evbuffer_read` has read from a socket. False after a request
/// arrived means bodies are read 4 KiB at a time.
bool CFerryHook_largeReadHookRan(void);

/// Reads from sockets that brought bytes, and the bytes they brought, since start.
uint64_t CFerryHook_socketReads(void);
uint64_t CFerryHook_socketBytes(void);

/// Sends libevent's own log lines to stderr at most once a second.
void CFerryHook_quietLibeventLogs(void);

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`, which Swift's
/// Glibc module does not export) when `threshold` bytes more lie free in its arenas than
/// after the last trim. Returns the free bytes it found when it trimmed, else 0. Call from
/// one thread only.
size_t CFerryHook_returnFreeMemory(size_t threshold);

#endif
