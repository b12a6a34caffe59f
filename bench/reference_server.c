// The raw C reference for small ingest in `make bench`: libevent's evhttp (the same
// library Ferry is built on), one event loop, each request's body written to a file of
// its own (create, write, close; no sync, no record, no queue), then 202. What Ferry does
// on top (validation, durable records, the queue) is what the comparison prices.
//
//   reference_server DIRECTORY    prints "listening address=127.0.0.1:PORT" on stderr
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

static const char *directory;
static unsigned long long counter;

static void upload(struct evhttp_request *request, void *argument) {
    (void)argument;
    struct evbuffer *body = evhttp_request_get_input_buffer(request);
    char path[4096];
    snprintf(path, sizeof path, "%s/%llu.data", directory, counter++);
    int descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (descriptor < 0) {
        evhttp_send_error(request, 500, "cannot create file");
        return;
    }
    while (evbuffer_get_length(body) > 0) {
        if (evbuffer_write(body, descriptor) < 0) {
            close(descriptor);
            unlink(path);
            evhttp_send_error(request, 500, "cannot write file");
            return;
        }
    }
    close(descriptor);
    struct evbuffer *answer = evbuffer_new();
    evbuffer_add_printf(answer, "{\"status\":\"queued\"}\n");
    evhttp_send_reply(request, 202, "Accepted", answer);
    evbuffer_free(answer);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
        return 2;
    }
    directory = argv[1];
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_gencb(http, upload, NULL);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    if (bound == NULL) {
        fprintf(stderr, "cannot listen\n");
        return 1;
    }
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&address, &length);
    fprintf(stderr, "listening address=127.0.0.1:%d\n", ntohs(address.sin_port));
    fflush(stderr);
    event_base_dispatch(base);
    return 0;
}
