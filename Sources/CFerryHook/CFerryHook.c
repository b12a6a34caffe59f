// libevent 2.1 streams a server request's body only if the request has header and chunk
// callbacks, and offers no public way to set them before the body is read (2.2's
// evhttp_set_newreqcb). Debian's libevent calls evhttp_request_new through its PLT, so a
// definition in the executable takes precedence; it forwards to the library's own and then
// lets Swift decorate the new request. See the README's "Streaming on libevent 2.1".
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>

#include "CFerryHook.h"

typedef struct evhttp_request *(*RequestConstructor)(
    void (*callback)(struct evhttp_request *, void *), void *argument);

typedef struct evhttp_connection *(*ConnectionConstructor)(
    struct event_base *base, struct evdns_base *dns, struct bufferevent *events, const char *address,
    unsigned short port);
typedef void (*ConnectionDestructor)(struct evhttp_connection *connection);
// libevent's own return type is an enum private to http-internal.h; it is int-sized.
typedef int (*HeadParser)(struct evhttp_request *request, struct evbuffer *buffer);
typedef char *(*LineReader)(struct evbuffer *buffer, size_t *length, enum evbuffer_eol_style style);

static RequestConstructor libraryConstructor;
static ConnectionConstructor libraryConnectionConstructor;
static ConnectionDestructor libraryConnectionDestructor;
static HeadParser libraryFirstLineParser;
static HeadParser libraryHeaderParser;
static LineReader libraryLineReader;
// The server request whose head libevent is parsing on this thread (its loop), if any:
// lines read meanwhile are that head's.
static _Thread_local struct evhttp_request *requestBeingParsed;
static _Atomic(CFerryHook_HeadObserver) nulObserver;
// Set once a hook has run: the start-up probe's proof. A flag, not a count, so the hot
// path reads a shared line and does not write it again and again from every loop.
static atomic_bool headLineHookRan;
static atomic_int_fast64_t connectionsOpen;
static atomic_int_fast64_t connectionCap = INT64_MAX;
static atomic_int_fast64_t connectionMaximum = INT64_MAX;
// Connections made while `connectionMaximum` others were open: their requests get 503.
// At most cap - maximum of them exist, so a short array scanned under a lock will do.
static pthread_mutex_t overflowLock = PTHREAD_MUTEX_INITIALIZER;
static struct evhttp_connection **overflow;
static size_t overflowCapacity;
static atomic_size_t overflowCount;
static atomic_uint_fast64_t connectionsRefused;
static _Atomic(CFerryHook_HeadObserver) headObserver;
static atomic_bool firstLineHookRan;
static pthread_once_t libraryConstructorOnce = PTHREAD_ONCE_INIT;
static _Atomic(CFerryHook_RequestObserver) requestObserver;
static atomic_uint_fast64_t requestsSeen;
// The most one socket read may bring (libevent's own is 4096 bytes).
static atomic_size_t largestRead = 4096;
static atomic_bool largeReadHookRan;
static atomic_uint_fast64_t socketReads;
static atomic_uint_fast64_t socketBytes;

static void findLibraryConstructor(void) {
    libraryConstructor = (RequestConstructor)dlsym(RTLD_NEXT, "evhttp_request_new");
    libraryConnectionConstructor =
        (ConnectionConstructor)dlsym(RTLD_NEXT, "evhttp_connection_base_bufferevent_new");
    libraryConnectionDestructor = (ConnectionDestructor)dlsym(RTLD_NEXT, "evhttp_connection_free");
    libraryFirstLineParser = (HeadParser)dlsym(RTLD_NEXT, "evhttp_parse_firstline_");
    libraryHeaderParser = (HeadParser)dlsym(RTLD_NEXT, "evhttp_parse_headers_");
    libraryLineReader = (LineReader)dlsym(RTLD_NEXT, "evbuffer_readln");
}

int64_t CFerryHook_connectionsOpen(void) {
    return atomic_load(&connectionsOpen);
}

// Every open connection, so that a server shutting down can close the idle ones: evhttp
// keeps its list to itself. Searched linearly on close: there are at most a few thousand.
static pthread_mutex_t openLock = PTHREAD_MUTEX_INITIALIZER;
static struct evhttp_connection **openConnections;
static size_t openCount;
static size_t openCapacity;

static void rememberConnection(struct evhttp_connection *connection) {
    pthread_mutex_lock(&openLock);
    if (openCount == openCapacity) {
        size_t capacity = openCapacity == 0 ? 256 : openCapacity * 2;
        struct evhttp_connection **grown = realloc(openConnections, capacity * sizeof *openConnections);
        if (grown == NULL) {
            // Not remembered: it is only never closed early at a shutdown.
            pthread_mutex_unlock(&openLock);
            return;
        }
        openConnections = grown;
        openCapacity = capacity;
    }
    openConnections[openCount++] = connection;
    pthread_mutex_unlock(&openLock);
}

static void forgetConnection(struct evhttp_connection *connection) {
    pthread_mutex_lock(&openLock);
    for (size_t index = 0; index < openCount; index++) {
        if (openConnections[index] == connection) {
            openConnections[index] = openConnections[--openCount];
            break;
        }
    }
    pthread_mutex_unlock(&openLock);
}

size_t CFerryHook_openConnections(
    struct event_base *base, struct evhttp_connection **into, size_t capacity) {
    size_t found = 0;
    pthread_mutex_lock(&openLock);
    for (size_t index = 0; index < openCount && found < capacity; index++) {
        if (evhttp_connection_get_base(openConnections[index]) == base) {
            into[found++] = openConnections[index];
        }
    }
    pthread_mutex_unlock(&openLock);
    return found;
}

// Every connection evhttp accepts is made here (libevent calls it through its PLT too).
struct evhttp_connection *evhttp_connection_base_bufferevent_new(
    struct event_base *base, struct evdns_base *dns, struct bufferevent *events, const char *address,
    unsigned short port) {
    pthread_once(&libraryConstructorOnce, findLibraryConstructor);
    if (libraryConnectionConstructor == NULL) {
        return NULL;
    }
    // Past the cap a connection costs nothing but the accept: libevent closes the socket
    // when it gets no connection object.
    if (atomic_load(&connectionsOpen) >= atomic_load(&connectionCap)) {
        atomic_fetch_add(&connectionsRefused, 1);
        return NULL;
    }
    struct evhttp_connection *connection = libraryConnectionConstructor(base, dns, events, address, port);
    if (connection != NULL) {
        // A bufferevent asks for at most 16 KiB per read unless told otherwise.
        struct bufferevent *made = evhttp_connection_get_bufferevent(connection);
        if (made != NULL) {
            bufferevent_set_max_single_read(made, atomic_load(&largestRead));
        }
        rememberConnection(connection);
        int64_t before = atomic_fetch_add(&connectionsOpen, 1);
        if (before >= atomic_load(&connectionMaximum)) {
            pthread_mutex_lock(&overflowLock);
            if (atomic_load(&overflowCount) < overflowCapacity) {
                overflow[atomic_fetch_add(&overflowCount, 1)] = connection;
            }
            pthread_mutex_unlock(&overflowLock);
        }
    }
    return connection;
}

void evhttp_connection_free(struct evhttp_connection *connection) {
    pthread_once(&libraryConstructorOnce, findLibraryConstructor);
    if (libraryConnectionDestructor != NULL) {
        if (atomic_load(&overflowCount) > 0) {
            pthread_mutex_lock(&overflowLock);
            size_t count = atomic_load(&overflowCount);
            for (size_t index = 0; index < count; index++) {
                if (overflow[index] == connection) {
                    overflow[index] = overflow[count - 1];
                    atomic_store(&overflowCount, count - 1);
                    break;
                }
            }
            pthread_mutex_unlock(&overflowLock);
        }
        forgetConnection(connection);
        libraryConnectionDestructor(connection);
        atomic_fetch_sub(&connectionsOpen, 1);
    }
}

void CFerryHook_setRequestObserver(CFerryHook_RequestObserver observer) {
    atomic_store(&requestObserver, observer);
}

uint64_t CFerryHook_requestsSeen(void) {
    return atomic_load(&requestsSeen);
}

struct evhttp_request *evhttp_request_new(
    void (*callback)(struct evhttp_request *, void *), void *argument) {
    pthread_once(&libraryConstructorOnce, findLibraryConstructor);
    if (libraryConstructor == NULL) {
        return NULL;
    }
    struct evhttp_request *request = libraryConstructor(callback, argument);
    if (request != NULL) {
        atomic_fetch_add(&requestsSeen, 1);
        CFerryHook_RequestObserver observer = atomic_load(&requestObserver);
        if (observer != NULL) {
            observer(request, argument);
        }
    }
    return request;
}

void CFerryHook_setConnectionLimits(int64_t maximum, int64_t cap) {
    pthread_mutex_lock(&overflowLock);
    size_t capacity = cap > maximum ? (size_t)(cap - maximum) : 0;
    if (capacity > overflowCapacity) {
        struct evhttp_connection **grown = realloc(overflow, capacity * sizeof *overflow);
        if (grown != NULL) {
            overflow = grown;
            overflowCapacity = capacity;
        }
    }
    atomic_store(&connectionMaximum, maximum);
    atomic_store(&connectionCap, cap);
    pthread_mutex_unlock(&overflowLock);
}

bool CFerryHook_isOverflowConnection(const struct evhttp_connection *connection) {
    if (atomic_load(&overflowCount) == 0) {
        return false;
    }
    bool found = false;
    pthread_mutex_lock(&overflowLock);
    size_t count = atomic_load(&overflowCount);
    for (size_t index = 0; index < count && !found; index++) {
        found = overflow[index] == connection;
    }
    pthread_mutex_unlock(&overflowLock);
    return found;
}

uint64_t CFerryHook_connectionsRefused(void) {
    return atomic_load(&connectionsRefused);
}

bool CFerryHook_firstLineHookRan(void) {
    return atomic_load(&firstLineHookRan);
}

void CFerryHook_setHeadObserver(CFerryHook_HeadObserver observer) {
    atomic_store(&headObserver, observer);
}

// libevent calls this each time bytes arrive while it waits for a request line: the first
// call for a request is the moment its head began, which the header deadline counts from.
int evhttp_parse_firstline_(struct evhttp_request *request, struct evbuffer *buffer) {
    pthread_once(&libraryConstructorOnce, findLibraryConstructor);
    if (libraryFirstLineParser == NULL) {
        return -1;  // DATA_CORRUPTED: the request fails, and so does the start-up probe
    }
    if (!atomic_load_explicit(&firstLineHookRan, memory_order_relaxed)) {
        atomic_store(&firstLineHookRan, true);
    }
    CFerryHook_HeadObserver observer = atomic_load(&headObserver);
    if (observer != NULL && request->kind == EVHTTP_REQUEST) {
        observer(request, request->evcon, request->cb_arg);
    }
    requestBeingParsed = request->kind == EVHTTP_REQUEST ? request : NULL;
    int status = libraryFirstLineParser(request, buffer);
    requestBeingParsed = NULL;
    return status;
}

// The header lines of a server request, read while this runs, are checked for NUL.
int evhttp_parse_headers_(struct evhttp_request *request, struct evbuffer *buffer) {
    pthread_once(&libraryConstructorOnce, findLibraryConstructor);
    if (libraryHeaderParser == NULL) {
        return -1;
    }
    requestBeingParsed = request->kind == EVHTTP_REQUEST ? request : NULL;
    int status = libraryHeaderParser(request, buffer);
    requestBeingParsed = NULL;
    return status;
}

// libevent keeps head lines as C strings: a NUL inside one would cut the value short
// unseen. Each line of a head being parsed is looked at before libevent uses it.
char *evbuffer_readln(struct evbuffer *buffer, size_t *length, enum evbuffer_eol_style style) {
    pthread_once(&libraryConstructorOnce, findLibraryConstructor);
    if (libraryLineReader == NULL) {
        return NULL;
    }
    size_t read = 0;
    char *line = libraryLineReader(buffer, &read, style);
    if (length != NULL) {
        *length = read;
    }
    struct evhttp_request *request = requestBeingParsed;
    if (line != NULL && request != NULL) {
        if (!atomic_load_explicit(&headLineHookRan, memory_order_relaxed)) {
            atomic_store(&headLineHookRan, true);
        }
        CFerryHook_HeadObserver observer = atomic_load(&nulObserver);
        if (observer != NULL && memchr(line, 0, read) != NULL) {
            observer(request, request->evcon, request->cb_arg);
        }
    }
    return line;
}

void CFerryHook_setLargestRead(size_t bytes) {
    atomic_store(&largestRead, bytes < 4096 ? 4096 : bytes);
}

bool CFerryHook_largeReadHookRan(void) {
    return atomic_load(&largeReadHookRan);
}

uint64_t CFerryHook_socketReads(void) {
    return atomic_load(&socketReads);
}

uint64_t CFerryHook_socketBytes(void) {
    return atomic_load(&socketBytes);
}

// libevent 2.1's own evbuffer_read reads at most 4096 bytes per call (EVBUFFER_MAX_READ),
// whatever the bufferevent asks for: a 1 GiB body costs 262,144 trips through the loop
// (poll, FIONREAD, readv, callbacks). This one keeps its contract (at most `howmuch`
// bytes, all that is waiting when negative; the count, 0 at end of stream, -1 with errno
// on failure; callbacks told) but reads what the socket holds, up to the largest read.
int evbuffer_read(struct evbuffer *buffer, evutil_socket_t descriptor, int howmuch) {
    if (!atomic_load_explicit(&largeReadHookRan, memory_order_relaxed)) {
        atomic_store(&largeReadHookRan, true);
    }
    int waiting = 0;
    int largest = (int)atomic_load_explicit(&largestRead, memory_order_relaxed);
    // As libevent: when the kernel tells nothing, try a small read (it may be the end).
    if (ioctl(descriptor, FIONREAD, &waiting) < 0 || waiting <= 0) {
        waiting = 4096;
    }
    if (waiting > largest) {
        waiting = largest;
    }
    if (howmuch < 0 || howmuch > waiting) {
        howmuch = waiting;
    }
    struct evbuffer_iovec space[2];
    int pieces = evbuffer_reserve_space(buffer, howmuch, space, 2);
    if (pieces < 0) {
        return -1;
    }
    struct iovec vectors[2];
    size_t room = 0;
    for (int index = 0; index < pieces; index++) {
        size_t length = space[index].iov_len;
        if (room + length > (size_t)howmuch) {
            length = (size_t)howmuch - room;
        }
        vectors[index].iov_base = space[index].iov_base;
        vectors[index].iov_len = length;
        room += length;
    }
    ssize_t count = readv(descriptor, vectors, pieces);
    if (count <= 0) {
        return (int)count;  // the reservation stays unused space; errno is readv's
    }
    size_t left = (size_t)count;
    int used = 0;
    for (; used < pieces && left > 0; used++) {
        space[used].iov_len = vectors[used].iov_len < left ? vectors[used].iov_len : left;
        left -= space[used].iov_len;
    }
    if (evbuffer_commit_space(buffer, space, used) < 0) {
        return -1;
    }
    atomic_fetch_add_explicit(&socketReads, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&socketBytes, (uint64_t)count, memory_order_relaxed);
    return (int)count;
}

void CFerryHook_setNULObserver(CFerryHook_HeadObserver observer) {
    atomic_store(&nulObserver, observer);
}

bool CFerryHook_headLineHookRan(void) {
    return atomic_load(&headLineHookRan);
}

// libevent logs every refused connection and every failed accept; under attack that is
// thousands of lines a second. At most one line per second reaches stderr, with a count
// of what was left out.
static void quietLog(int severity, const char *message) {
    static _Atomic(time_t) lastSecond;
    static atomic_uint_fast64_t suppressed;
    (void)severity;
    time_t now = time(NULL);
    time_t last = atomic_load(&lastSecond);
    if (now == last || !atomic_compare_exchange_strong(&lastSecond, &last, now)) {
        atomic_fetch_add(&suppressed, 1);
        return;
    }
    char line[600];
    uint64_t dropped = atomic_exchange(&suppressed, 0);
    int length = dropped > 0
        ? snprintf(line, sizeof line, "libevent: %s (%llu similar lines left out)\n", message,
              (unsigned long long)dropped)
        : snprintf(line, sizeof line, "libevent: %s\n", message);
    if (length > 0) {
        ssize_t written = write(STDERR_FILENO, line, (size_t)length < sizeof line ? (size_t)length : sizeof line - 1);
        (void)written;
    }
}

void CFerryHook_quietLibeventLogs(void) {
    event_set_log_callback(quietLog);
}

size_t CFerryHook_returnFreeMemory(size_t threshold) {
    // malloc_trim gives the pages back but the chunks stay free, so the free total does not
    // fall after a trim: compare with what was free after the last one, or a heap with
    // holes would be trimmed every time. Reused memory lowers the mark.
    static size_t freeAfterLastTrim;
    size_t free = mallinfo2().fordblks;
    if (free < freeAfterLastTrim) {
        freeAfterLastTrim = free;
    }
    if (free <= freeAfterLastTrim + threshold) {
        return 0;
    }
    malloc_trim(0);
    freeAfterLastTrim = free;
    return free;
}
