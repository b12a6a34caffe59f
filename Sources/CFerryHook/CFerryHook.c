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

static RequestConstructor libraryConstructor;
static pthread_once_t libraryConstructorOnce = PTHREAD_ONCE_INIT;
static _Atomic(CFerryHook_RequestObserver) requestObserver;
static atomic_uint_fast64_t requestsSeen;

static void findLibraryConstructor(void) {
    libraryConstructor = (RequestConstructor)dlsym(RTLD_NEXT, "evhttp_request_new");
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
