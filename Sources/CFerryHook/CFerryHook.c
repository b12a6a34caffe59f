// libevent 2.1 streams a server request's body only if the request has header and chunk
// callbacks, and offers no public way to set them before the body is read (2.2's
// evhttp_set_newreqcb). Debian's libevent calls evhttp_request_new through its PLT, so a
// definition in the executable takes precedence; it forwards to the library's own and then
// lets Swift decorate the new request. See the README's "Streaming on libevent 2.1".
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "CFerryHook.h"

typedef struct evhttp_request *(*RequestConstructor)(
    void (*callback)(struct evhttp_request *, void *), void *argument);

typedef struct evhttp_connection *(*ConnectionConstructor)(
    struct event_base *base, struct evdns_base *dns, struct bufferevent *events, const char *address,
    unsigned short port);
typedef void (*ConnectionDestructor)(struct evhttp_connection *connection);

static RequestConstructor libraryConstructor;
static ConnectionConstructor libraryConnectionConstructor;
static ConnectionDestructor libraryConnectionDestructor;
static atomic_int_fast64_t connectionsOpen;
static pthread_once_t libraryConstructorOnce = PTHREAD_ONCE_INIT;
static _Atomic(CFerryHook_RequestObserver) requestObserver;
static atomic_uint_fast64_t requestsSeen;

static void findLibraryConstructor(void) {
    libraryConstructor = (RequestConstructor)dlsym(RTLD_NEXT, "evhttp_request_new");
    libraryConnectionConstructor =
        (ConnectionConstructor)dlsym(RTLD_NEXT, "evhttp_connection_base_bufferevent_new");
    libraryConnectionDestructor = (ConnectionDestructor)dlsym(RTLD_NEXT, "evhttp_connection_free");
}

int64_t CFerryHook_connectionsOpen(void) {
    return atomic_load(&connectionsOpen);
}

// Every connection evhttp accepts is made here (libevent calls it through its PLT too).
struct evhttp_connection *evhttp_connection_base_bufferevent_new(
    struct event_base *base, struct evdns_base *dns, struct bufferevent *events, const char *address,
    unsigned short port) {
    pthread_once(&libraryConstructorOnce, findLibraryConstructor);
    if (libraryConnectionConstructor == NULL) {
        return NULL;
    }
    struct evhttp_connection *connection = libraryConnectionConstructor(base, dns, events, address, port);
    if (connection != NULL) {
        atomic_fetch_add(&connectionsOpen, 1);
    }
    return connection;
}

void evhttp_connection_free(struct evhttp_connection *connection) {
    pthread_once(&libraryConstructorOnce, findLibraryConstructor);
    if (libraryConnectionDestructor != NULL) {
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
